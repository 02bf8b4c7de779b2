"""The pay-now page's use cases (issue 15): what a link shows, and paying through it.

Every call starts with the token: it is counted (per-token rate limit) and opened
(`PaymentLinks.open`: unknown -> 404; its state: payable, paid, cancelled, expired).

Paying reuses the one charging path: the owner's new card is attached to their Stripe
customer, then `SubscriptionService.reactivate(..., on_session=True)` plans the outstanding
amount (`plan_reactivation`: the full period, a new cycle from now, the card becomes the
subscription's with the successful charge) and `Charging` runs it with the ledger's
pending -> resolve pattern. The charge key claimed in phase 1 is derived from the subscription
state the charge was planned from, so two tabs paying at once plan the same key: one claim
wins, the other is a 409 and reaches Stripe never. A card that asks for authentication leaves
the payment pending with its intent's client secret; the page authenticates with Stripe.js and
`confirm` finishes the charge (`Charging.resolve`, forward-only and idempotent, as a webhook
or the recovery pass would).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from chalicelib.adapters.email import Email
from chalicelib.adapters.stripe.customers import Card
from chalicelib.adapters.stripe.payments import outcome_from_intent
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import Conflict, DomainError, InvalidRequest, Unavailable
from chalicelib.domain.payment_links import LinkState, ensure_link_can_be_issued
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Subscription
from chalicelib.observability import logger
from chalicelib.services.charging import ChargeResult, Charging
from chalicelib.services.payment_links import IssuedPaymentLink, OpenedLink, PaymentLinks
from chalicelib.services.ports import Clock, PaymentGateway, UnitOfWorkFactory
from chalicelib.services.receipts import when
from chalicelib.services.subscriptions import SubscriptionService, fail_if_declined

PayStatus = Literal["paid", "requires_action", "processing"]
PAY_FIELD = "payment_method_id"


class CardSetup(Protocol):
    def setup_intent(self, community_id: str, profile_id: str) -> str: ...
    def attach(self, community_id: str, profile_id: str, payment_method_id: str) -> Card: ...


class CardsOnFile(Protocol):
    def require(self, community_id: str, profile_id: str, payment_method_id: str) -> Card: ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class ProfileReader(Protocol):
    def get(self, community_id: str, profile_id: str) -> Profile: ...
    def get_many(self, community_id: str, profile_ids: list[str]) -> dict[str, Profile]: ...


class Mailer(Protocol):
    def send(self, email: Email) -> str: ...


@dataclass(frozen=True)
class PayPage:
    """What GET /pay/{token} shows."""

    state: LinkState
    processing: bool  # a payment through the link waits for Stripe or for authentication
    community_name: str
    plan_name: str
    owner_name: str
    member_names: list[str]
    summary: dict[str, Any] | None  # the reactivation preview (GET .../preview's shape)
    expires_at: datetime
    stripe_account_id: str | None


@dataclass(frozen=True)
class PayResult:
    status: PayStatus
    client_secret: str | None = None
    payment_intent_id: str | None = None


def mask_email(address: str) -> str:
    """a••••@example.org: enough for the owner to recognise, not to harvest."""
    name, _, domain = address.partition("@")
    return f"{name[:1]}{'•' * 4}@{domain}"


class PayNow:
    def __init__(
        self,
        links: PaymentLinks,
        subscriptions: SubscriptionService,
        cards: CardSetup,
        charging: Charging,
        gateway: PaymentGateway,
        communities: CommunityReader,
        profiles: ProfileReader,
        mailer: Mailer,
        clock: Clock,
        uow: UnitOfWorkFactory,
        cards_on_file: CardsOnFile,
    ) -> None:
        self._links = links
        self._cards_on_file = cards_on_file
        self._uow = uow
        self._subscriptions = subscriptions
        self._cards = cards
        self._charging = charging
        self._gateway = gateway
        self._communities = communities
        self._profiles = profiles
        self._mailer = mailer
        self._clock = clock

    def _open(self, token: str) -> OpenedLink:
        now = self._clock.now()
        self._links.count_request(token, now)
        return self._links.open(token, now)

    def _payable(self, token: str) -> OpenedLink:
        opened = self._open(token)
        if opened.state != "payable":
            raise Conflict(_not_payable_message(opened.state))
        return opened

    # --- the page -------------------------------------------------------------------------------
    def page(self, token: str) -> PayPage:
        opened = self._open(token)
        sub = opened.subscription
        community = self._communities.get(sub.community_id)
        names = self._profiles.get_many(sub.community_id, [sub.owner_id, *sub.member_ids])
        owner = names.get(sub.owner_id)
        summary = None
        processing = sub.pending_charge is not None
        if opened.state == "payable" and not processing:
            summary = self._subscriptions.preview(sub.community_id, sub.id, "reactivate")
        return PayPage(
            state=opened.state,
            processing=processing,
            community_name=community.name,
            plan_name=sub.plan.name,
            owner_name=owner.name if owner else "",
            member_names=[names[m].name for m in sub.member_ids if m in names],
            summary=summary,
            expires_at=opened.link.expires_at,
            stripe_account_id=community.stripe_account_id,
        )

    def setup_intent(self, token: str) -> tuple[str, str | None]:
        """A SetupIntent for the owner's customer on the community's account: (client secret,
        the account Stripe.js must act on)."""
        sub = self._payable(token).subscription
        secret = self._cards.setup_intent(sub.community_id, sub.owner_id)
        return secret, self._communities.get(sub.community_id).stripe_account_id

    # --- paying ---------------------------------------------------------------------------------
    def pay(self, token: str, payment_method_id: str) -> PayResult:
        """Attach the card the page set up to the owner and charge the outstanding amount with
        it, on session. 402 when declined (the subscription stays failed_payment)."""
        sub = self._payable(token).subscription
        if sub.pending_charge is not None:
            raise Conflict("A payment for this amount is already in progress.")
        self._attach(sub, payment_method_id)
        result = self._subscriptions.reactivate(
            sub.community_id,
            sub.id,
            payment_method_id=payment_method_id,
            owner_id=None,
            billing_cycle=None,
            member_ids=None,
            on_session=True,
        )
        return _pay_result(result)

    def _attach(self, sub: Subscription, payment_method_id: str) -> None:
        """The card on the owner's customer: a SetupIntent with a customer attached it
        already (real Stripe); localstripe's leaves that to us."""
        try:
            self._cards_on_file.require(sub.community_id, sub.owner_id, payment_method_id)
        except InvalidRequest:
            self._cards.attach(sub.community_id, sub.owner_id, payment_method_id)

    def confirm(self, token: str, payment_intent_id: str) -> PayResult:
        """After the customer authenticated: confirm the intent (manual confirmation) and
        resolve the payment it belongs to. Only the intent of the payment this subscription
        waits for is accepted."""
        opened = self._open(token)
        sub = opened.subscription
        pending = sub.pending_charge
        if pending is None or pending.payment_id is None:
            if opened.state == "paid":
                return PayResult("paid")
            raise Conflict(_not_payable_message(opened.state, "no payment waits for confirmation"))
        payment_id = pending.payment_id
        with self._uow() as uow:
            payment = uow.payments.get(sub.community_id, payment_id)
        if payment.stripe.payment_intent_id != payment_intent_id:
            raise InvalidRequest.for_field(
                "payment_intent_id", "This is not the payment this link is waiting for."
            )
        account = payment.stripe.account_id
        intent = self._gateway.retrieve_intent(payment_intent_id, account)
        if intent.get("status") == "requires_action":
            # Not authenticated (yet): the page may try again; the recovery pass fails and
            # cancels it after PENDING_RECOVERY_DELAY (docs/rules/pay-links.md).
            return PayResult("processing", payment_intent_id=payment_intent_id)
        if intent.get("status") == "requires_confirmation":
            intent = self._gateway.confirm_intent(payment_intent_id, account)
        outcome = outcome_from_intent(intent)
        if outcome.status == "pending":
            return PayResult("processing", payment_intent_id=payment_intent_id)
        resolution = self._charging.resolve(sub.community_id, payment_id, outcome, actor="api")
        fail_if_declined(ChargeResult(resolution.subscription, resolution.payment))
        return PayResult("paid", payment_intent_id=payment_intent_id)

    # --- an expired link ------------------------------------------------------------------------
    def email_new_link(self, token: str) -> str:
        """Send a fresh link to the owner's address ON FILE (never one given in the request);
        once per expired link. Returns the masked address."""
        opened = self._open(token)
        if opened.state != "expired":
            raise Conflict(_not_payable_message(opened.state, "it needs no new link"))
        sub = opened.subscription
        owner = self._profiles.get(sub.community_id, sub.owner_id)
        if not owner.is_customer or not owner.email:
            raise Conflict("The owner has no email address on file.")
        now = self._clock.now()
        ensure_link_can_be_issued(sub, now)  # before the one resend is used up
        if not self._links.claim_resend(token, now):
            raise Conflict("A new link was already sent for this one; use the newest email.")
        try:
            issued = self._links.issue(sub.community_id, sub.id, now)
            community = self._communities.get(sub.community_id)
            self._mailer.send(_new_link_email(owner, community, sub, issued))
        except Exception as error:
            # Nothing reached the owner: the one resend of this link is given back, so asking
            # again (the page's button stays) can still send it.
            self._links.release_resend(token, now)
            if isinstance(error, DomainError):
                raise
            logger.exception("payment_link_email_failed", extra={"subscription_id": sub.id})
            raise Unavailable("The email could not be sent; please try again later.") from error
        logger.info("payment link re-sent", extra={"subscription_id": sub.id})
        return mask_email(owner.email)


def _pay_result(result: ChargeResult) -> PayResult:
    fail_if_declined(result)
    payment = result.payment
    if result.client_secret is not None:
        return PayResult("requires_action", client_secret=result.client_secret)
    if payment is not None and payment.status == "pending":
        return PayResult("processing")
    return PayResult(
        "paid", payment_intent_id=payment.stripe.payment_intent_id if payment else None
    )


def _not_payable_message(state: LinkState, reason: str = "") -> str:
    text = {
        "paid": "This amount has been paid already.",
        "cancelled": "The subscription has been cancelled.",
        "expired": "This link has expired.",
        "payable": "This link can still be paid.",
    }[state]
    return f"{text} ({reason})" if reason else text


def _new_link_email(
    owner: Profile, community: Community, sub: Subscription, issued: IssuedPaymentLink
) -> Email:
    assert owner.email is not None
    until = when(issued.expires_at)
    body = (
        f"Hello {owner.name},\n\n"
        f"Here is a new link to pay for your {sub.plan.name} membership at {community.name}:\n\n"
        f"{issued.url}\n\n"
        f"It works until {until}. Earlier links no longer work.\n"
    )
    return Email(owner.email, f"Your new payment link for {community.name}", body)
