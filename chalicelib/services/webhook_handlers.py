"""What each Stripe event type does, and where it belongs (which community).

The effects on payments and subscriptions are the payment service's own use cases (the same
resolution code the API and the jobs use), bound to the event's unit of work
(`PaymentService.committing_with(scope.unit_of_work(community_id))`): their commit carries
the event record first, so the de-duplication marker and the effect are written together or
not at all.

Routing: a Connect event carries `account`; it belongs to the community whose connected account
that is. News of a charge (refund, dispute) on an account no community has now still reaches
the payment taken on it (the community connected another account since); anything else on
such an account is ignored. A platform-account event is routed by the ids our PaymentIntents
carry in their metadata (charges copy them), or by the PaymentIntent id. A payment is only
touched by an event of the Stripe account it was charged on, and only by news of its own
PaymentIntent: the owner of a connected account can put our ids on objects of their own
(`IntentClaim.refusal`, docs/rules/money.md "What a Stripe event may claim").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from chalicelib.adapters.stripe.payments import IntentOutcome, intent_claim, outcome_from_intent
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import ConcurrentChange, Unavailable
from chalicelib.domain.payment_reports import PaymentReport
from chalicelib.domain.payments import Payment
from chalicelib.domain.subscriptions import Subscription
from chalicelib.domain.webhook_events import Outcome, WebhookEvent
from chalicelib.observability import logger
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import Clock, UnitOfWorkFactory
from chalicelib.services.webhooks import Effect, EventHandler, EventScope

DisputeStatus = Literal["open", "won", "lost"]
CLOSED_DISPUTE: dict[str, DisputeStatus] = {"won": "won", "warning_closed": "won", "lost": "lost"}


class CommunityByAccount(Protocol):
    def find_by_stripe_account(self, account: str) -> Community | None: ...


class CustomerDirectory(Protocol):
    def community_of_customer(self, customer_id: str) -> str | None: ...


class ProfileCustomers(Protocol):
    def forget_stripe_customer(self, community_id: str, profile_id: str, customer_id: str) -> bool:
        """The profile has no customer any more if `customer_id` was its customer; else False."""
        ...


@dataclass(frozen=True)
class Route:
    """Where an event belongs: a community, or nowhere (with the reason)."""

    community_id: str | None
    reason: str | None = None


def metadata_ids(obj: Mapping[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return {}
    return {k: v for k, v in metadata.items() if isinstance(v, str) and v}


class WebhookHandlers:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        payments: PaymentService,
        communities: CommunityByAccount,
        customers: CustomerDirectory,
        clock: Clock,
        profiles: ProfileCustomers,
    ) -> None:
        self._uow = uow
        self._payments = payments
        self._communities = communities
        self._customers = customers
        self._clock = clock
        self._profiles = profiles

    def registry(self) -> dict[str, EventHandler]:
        return {
            "payment_intent.succeeded": self.payment_intent,
            "payment_intent.payment_failed": self.payment_intent,
            "charge.refunded": self.charge_refunded,
            "charge.dispute.created": self.dispute_created,
            "charge.dispute.closed": self.dispute_closed,
            "payment_method.updated": self.payment_method,
            "payment_method.automatically_updated": self.payment_method,
            "payment_method.detached": self.payment_method,
            "account.application.deauthorized": self.deauthorized,
            "customer.deleted": self.customer_deleted,
        }

    def _payments_in(self, scope: EventScope, community_id: str) -> PaymentService:
        return self._payments.committing_with(scope.unit_of_work(community_id))

    # --- payment outcomes -------------------------------------------------------------------
    def payment_intent(self, event: WebhookEvent, scope: EventScope) -> Effect:
        """Resolve the pending payment our metadata names, with the shared resolution code:
        forward-only, so a late or repeated outcome changes nothing. News the payment already
        records (the usual case: the charge's own answer resolved it first) is stored in ONE
        conditional TransactWriteItems. Otherwise that write is refused and shows the payment
        and its subscription, and one more TransactWriteItems (effect + event record)
        resolves it. No Stripe call."""
        intent = event.data_object
        ids = metadata_ids(intent)
        community_id, payment_id = ids.get("community_id"), ids.get("payment_id")
        if not community_id or not payment_id:
            return Effect(Outcome.ignored("the PaymentIntent names no payment of ours"))
        outcome = outcome_from_intent(intent)
        if outcome.status == "pending":
            status = intent.get("status")
            return Effect(Outcome.ignored(f"the PaymentIntent is {status}", community_id))
        uow_factory = scope.unit_of_work(community_id)
        subscription_id = ids.get("subscription_id")
        reported = _store_if_already_as_reported(
            uow_factory, community_id, payment_id, subscription_id, outcome, event.account
        )
        if reported.stored:
            return Effect(Outcome.processed(community_id))
        known = reported.seen
        if known is None:
            with uow_factory() as uow:
                known = (
                    uow.payments.with_subscription(community_id, payment_id, subscription_id)
                    if subscription_id
                    else None
                )
                payment = known[0] if known else uow.payments.find(community_id, payment_id)
        else:
            payment = known[0]
        if payment is None:
            return Effect(
                Outcome.ignored(
                    f"no payment {payment_id} in community {community_id}", community_id
                )
            )
        refusal = intent_claim(intent, event.account).refusal(payment)
        if refusal is not None:
            return Effect(Outcome.ignored(_refused(event, refusal)))
        charging = self._payments_in(scope, community_id)
        charging.resolve_known(community_id, payment_id, outcome, known)
        return Effect(Outcome.processed(community_id))

    # --- refunds and disputes ----------------------------------------------------------------
    def charge_refunded(self, event: WebhookEvent, scope: EventScope) -> Effect:
        charge = event.data_object
        refunded = charge.get("amount_refunded")
        if not isinstance(refunded, int) or isinstance(refunded, bool) or refunded < 0:
            return Effect(Outcome.failed("charge.amount_refunded is not an amount"))
        found = self._payment_of(event, charge)
        if isinstance(found, Route):
            return Effect(Outcome.ignored(found.reason or "not ours"))
        community_id, intent_id = found.community_id, _intent_of(found, charge)
        self._payments_in(scope, community_id).record_refunded_total(
            community_id, intent_id, refunded
        )
        return Effect(Outcome.processed(community_id))

    def dispute_created(self, event: WebhookEvent, scope: EventScope) -> Effect:
        return self._dispute(event, scope, "open")

    def dispute_closed(self, event: WebhookEvent, scope: EventScope) -> Effect:
        stripe_status = str(event.data_object.get("status"))
        status = CLOSED_DISPUTE.get(stripe_status)
        if status is None:
            return Effect(Outcome.failed(f"a closed dispute in status {stripe_status}"))
        return self._dispute(event, scope, status)

    def _dispute(self, event: WebhookEvent, scope: EventScope, status: DisputeStatus) -> Effect:
        dispute = event.data_object
        found = self._payment_of(event, dispute)
        if isinstance(found, Route):
            return Effect(Outcome.ignored(found.reason or "not ours"))
        community_id, intent_id = found.community_id, _intent_of(found, dispute)
        if status == "open" and found.dispute_status in ("won", "lost"):
            # One dispute per charge: a late or replayed `created` never reopens a closed one.
            return Effect(Outcome.processed(community_id))
        if status != "open" and found.dispute_status is None:
            # `closed` overtook `created`: open it first (forward-only, safe to repeat) so the
            # close applies; the close commits with the event record.
            self._payments.record_dispute(community_id, intent_id, "open")
        self._payments_in(scope, community_id).record_dispute(community_id, intent_id, status)
        return Effect(Outcome.processed(community_id))

    # --- cards ------------------------------------------------------------------------------
    def payment_method(self, event: WebhookEvent, scope: EventScope) -> Effect:
        """Refresh the card snapshot our subscriptions show and charge; flag a detached card."""
        method = event.data_object
        method_id = _id_of(method.get("id"))
        if method_id is None:
            return Effect(Outcome.failed("the payment method has no id"))
        route = self._route_card(event, method)
        if route.community_id is None:
            return Effect(Outcome.ignored(route.reason or "not ours"))
        with scope.unit_of_work(route.community_id)() as uow:
            snapshot = uow.cards.find(route.community_id, method_id)
            if snapshot is None:
                return Effect(Outcome.ignored("no subscription of ours uses this card"))
            if event.type == "payment_method.detached":
                # Final whatever the order: an update of the same second must not hide it.
                if snapshot.get("detached_at"):
                    return Effect(Outcome.processed(route.community_id))
                uow.cards.mark_detached(
                    route.community_id, method_id, self._clock.now().isoformat()
                )
                uow.commit()
                return Effect(Outcome.processed(route.community_id))
            if int(snapshot.get("card_event_created") or 0) >= event.created:
                return Effect(Outcome.processed(route.community_id))  # newer news applied
            card = method.get("card")
            card = card if isinstance(card, Mapping) else {}
            changes = {
                k: card.get(k) for k in ("brand", "last4", "exp_month", "exp_year") if k in card
            }
            uow.cards.update_from_event(route.community_id, method_id, changes, event.created)
            uow.commit()
        return Effect(Outcome.processed(route.community_id))

    def _route_card(self, event: WebhookEvent, method: Mapping[str, Any]) -> Route:
        if event.account:
            return self.route_by_account(event.account)
        previous = event.payload.get("data", {}).get("previous_attributes") or {}
        customer = _id_of(method.get("customer")) or _id_of(previous.get("customer"))
        if customer is None:
            return Route(None, "the card belongs to no customer")
        community_id = self._customers.community_of_customer(customer)
        if not community_id:
            return Route(None, f"customer {customer} is not one of ours")
        return Route(community_id)

    def customer_deleted(self, event: WebhookEvent, scope: EventScope) -> Effect:
        """Stripe deleted a customer (and its cards): the profile it was made for forgets it,
        so its next card makes a new customer instead of failing on the deleted one forever.
        The profile is named by the customer's metadata (ours, set when we made it); the write
        is conditional on the profile still having that customer, so it is safe to repeat and
        never touches a profile that has moved on."""
        customer = event.data_object
        customer_id = _id_of(customer.get("id"))
        ids = metadata_ids(customer)
        community_id, profile_id = ids.get("community_id"), ids.get("profile_id")
        if customer_id is None or community_id is None or profile_id is None:
            return Effect(Outcome.ignored("not a customer of ours"))
        if event.account and self.route_by_account(event.account).community_id != community_id:
            return Effect(Outcome.ignored(f"the customer is not on {community_id}'s account"))
        if not self._profiles.forget_stripe_customer(community_id, profile_id, customer_id):
            return Effect(Outcome.ignored(f"profile {profile_id} does not use {customer_id}"))
        return Effect(Outcome.processed(community_id))

    # --- Connect ------------------------------------------------------------------------------
    def deauthorized(self, event: WebhookEvent, scope: EventScope) -> Effect:
        """The community disconnected our platform: flag it so its charges are refused."""
        if not event.account:
            return Effect(Outcome.ignored("a deauthorization names no account"))
        route = self.route_by_account(event.account)
        if route.community_id is None:
            return Effect(Outcome.ignored(route.reason or "not ours"))
        with scope.unit_of_work(route.community_id)() as uow:
            uow.communities.mark_deauthorized(route.community_id, event.account, self._clock.now())
            uow.commit()
        return Effect(Outcome.processed(route.community_id))

    # --- routing ----------------------------------------------------------------------------
    def route_by_account(self, account: str) -> Route:
        community = self._communities.find_by_stripe_account(account)
        if community is None:
            return Route(None, f"no community has connected account {account}")
        return Route(community.id)

    def _payment_of(self, event: WebhookEvent, obj: Mapping[str, Any]) -> Payment | Route:
        """Our payment for a charge or dispute (on the event's Stripe account): by its
        PaymentIntent, else by metadata ids, else by the metadata of the PaymentIntent Stripe
        has. A payment still pending is resolved from that PaymentIntent first: news of a
        refund or dispute proves the charge was made, and applied to a pending payment it
        would change nothing and be lost.

        An account changes hands: a community may connect another one, and another community
        may connect the one it left. A payment taken on the event's account is found wherever
        its community is now: on an account no community has, by its PaymentIntent or our ids;
        on an account another community has now, by its PaymentIntent only (that community
        writes the account's metadata now). Only a payment taken on that account is touched."""
        community_id = None
        left_account = None
        if event.account:
            route = self.route_by_account(event.account)
            if route.community_id is None:
                left_account = route
            community_id = route.community_id
        intent_id = _id_of(obj.get("payment_intent"))
        intent = {"id": intent_id, "metadata": metadata_ids(obj)}
        found = self._payments.find_payment_for_intent(intent, community_id)
        if found is None and community_id is not None and intent_id:
            taken_here = self._payments.find_payment_for_intent({"id": intent_id}, None)
            if taken_here is not None and taken_here.stripe.account_id == event.account:
                found, community_id = taken_here, taken_here.community_id
        if left_account is not None and (found is None or found.stripe.account_id != event.account):
            return left_account
        if found is not None and found.stripe.payment_intent_id not in (None, intent_id):
            return Route(None, _refused(event, _not_its_intent(found, intent_id)))
        if (found is None or found.status == "pending") and intent_id:
            found = self._payments.settle_from_stripe(intent_id, event.account, community_id)
        if found is None:
            return Route(None, "no payment of ours matches")
        if found.status == "pending":
            # Stripe's PaymentIntent has not ended either: let Stripe deliver this again.
            raise Unavailable(f"Payment {found.id} is not settled yet; deliver the event later.")
        if found.stripe.account_id != event.account:
            return Route(None, _other_account(found, event.account))
        if intent_id is None or found.stripe.payment_intent_id != intent_id:
            return Route(None, _refused(event, _not_its_intent(found, intent_id)))
        return found


@dataclass(frozen=True)
class _Reported:
    stored: bool  # the event is stored: the payment already records what it reports
    seen: tuple[Payment, Subscription] | None = None  # else: what the refused checks saw


def _store_if_already_as_reported(
    open_uow: UnitOfWorkFactory,
    community_id: str,
    payment_id: str,
    subscription_id: str | None,
    outcome: IntentOutcome,
    account: str | None,
) -> _Reported:
    """Store the event in ONE conditional write when the payment already records what it
    reports, so that resolving it would change nothing (the usual case: the charge's own
    answer resolved it moments before). Otherwise nothing is written, and the refused checks
    show the payment and subscription they saw (the resolution starts from them)."""
    if not outcome.payment_intent_id or outcome.status not in ("succeeded", "failed"):
        return _Reported(stored=False)
    report = PaymentReport(
        community_id,
        payment_id,
        subscription_id,
        outcome.status,
        outcome.payment_intent_id,
        account,
    )
    with open_uow() as uow:
        uow.payments.expect_settled(report)
        try:
            uow.commit()
        except ConcurrentChange:
            return _Reported(stored=False, seen=uow.payments.seen_by_refused_checks())
    return _Reported(stored=True)


def _intent_of(found: Payment, obj: Mapping[str, Any]) -> str:
    intent_id = found.stripe.payment_intent_id or _id_of(obj.get("payment_intent"))
    assert intent_id is not None  # found by it, or the payment records it
    return intent_id


def _id_of(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _other_account(payment: Payment, account: str | None) -> str:
    return (
        f"payment {payment.id} is on Stripe account "
        f"{payment.stripe.account_id or 'platform'}, the event on {account or 'platform'}"
    )


def _refused(event: WebhookEvent, reason: str) -> str:
    """An event whose object is not about the payment it names (stored ignored, and logged:
    on a connected account it may be the account's owner claiming what did not happen)."""
    logger.warning("webhook_claim_refused", extra={"event_id": event.id, "reason": reason})
    return reason


def _not_its_intent(payment: Payment, intent_id: str | None) -> str:
    return (
        f"the charge's PaymentIntent {intent_id or '(none)'} is not payment {payment.id}'s "
        f"({payment.stripe.payment_intent_id or 'none recorded'})"
    )
