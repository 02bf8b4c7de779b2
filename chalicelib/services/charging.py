"""The payment flow of DESIGN.md section 6, shared by the API, the scheduler and the webhooks.

1. `charge(...)`: the pending payment (with its lines), the subscription's pending-charge
   marker, the charge-key claim (at most one live charge per (subscription, period, kind)),
   the reserved credit and an audit event: one unit of work.
2. One PaymentIntent (`confirm`, `off_session`, idempotency key = payment id, our ids in
   metadata). A transient Stripe failure raises `PaymentPending` (503): nothing else is
   written, the payment stays pending and is resolved later from what Stripe did.
3. `resolve(...)`: payment succeeded/failed + the subscription's transition + charge key +
   credit + audit event: one unit of work. Forward-only and idempotent: a payment that is no
   longer pending is not resolved again (a late success after a recorded failure is recorded
   on the payment alone, because the money was taken).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from chalicelib.adapters.dynamodb.billing_context import BillingContext
from chalicelib.adapters.stripe.payments import (
    AUTHENTICATION_REQUIRED,
    ChargeFailure,
    ChargeRequest,
    IntentOutcome,
    outcome_from_intent,
)
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.charge_outcomes import (
    apply_charge_failed,
    apply_charge_succeeded,
    begin_charge,
    settle_without_stripe,
)
from chalicelib.domain.errors import (
    ConcurrentChange,
    Conflict,
    InvalidRequest,
    StripeRateLimited,
    Unavailable,
)
from chalicelib.domain.events import Actor, AuditEvent
from chalicelib.domain.ids import new_id
from chalicelib.domain.payments import (
    ACCOUNT_DISCONNECTED,
    CARD_DETACHED,
    NO_CARD_ON_ACCOUNT,
    PENDING_RECOVERY_DELAY,
    BilledTo,
    Payment,
    PaymentFailure,
    PaymentMethodSummary,
    Refund,
    automatic_refund_id,
    new_payment,
)
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Outcome, Subscription
from chalicelib.observability import logger
from chalicelib.services.events import payment_changed, subscription_changed
from chalicelib.services.ports import (
    BillingReader,
    Clock,
    PaymentGateway,
    UnitOfWork,
    UnitOfWorkFactory,
)
from chalicelib.services.refunds import (
    RefundPending,
    Refunds,
    begin_refund,
    refund_started_event,
)
from chalicelib.services.retrying import retrying

CARD_FIELD = "payment_method_id"


def charge_request(
    payment: Payment, customer_id: str, payment_method_id: str, *, on_session: bool = False
) -> ChargeRequest:
    """The one PaymentIntent request of a payment (idempotency key = the payment id);
    `on_session`: the customer is on the pay page."""
    return ChargeRequest(
        payment_id=payment.id,
        amount=payment.total,
        currency=payment.currency,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        stripe_account_id=payment.stripe.account_id,
        application_fee_amount=payment.application_fee_amount,
        metadata={
            "community_id": payment.community_id,
            "subscription_id": payment.subscription_id,
            "payment_id": payment.id,
            "kind": payment.kind,
        },
        on_session=on_session,
    )


class PaymentPending(Unavailable):
    """Stripe did not answer definitively; the payment stays pending until it is resolved
    from Stripe (webhook or recovery pass). Never charge it again."""

    def __init__(self, message: str, payment_id: str) -> None:
        super().__init__(message)
        self.payment_id = payment_id


class ChargeRateLimited(PaymentPending):
    """Stripe answered the charge 429: it made no PaymentIntent. The payment stays pending
    (claim and all) and may be sent again, same key, within RESUME_WINDOW (`resume`)."""

    def __init__(self, message: str, payment_id: str, code: str) -> None:
        super().__init__(message, payment_id)
        self.code = code


# A rate-limited charge is sent again within this; later, the recovery pass (which looks at a
# pending payment PENDING_RECOVERY_DELAY after it was made) decides from what Stripe holds.
RESUME_WINDOW = PENDING_RECOVERY_DELAY - timedelta(minutes=1)


@dataclass(frozen=True)
class ChargeResult:
    subscription: Subscription
    payment: Payment | None
    # On session only: the payment waits for the customer's authentication (Stripe.js
    # handleCardAction with this secret), then `Charging.finish_on_session`.
    client_secret: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.payment is None or self.payment.status != "failed"


LATE_SUCCESS_REFUND_REASON = (
    "The payment succeeded after it was recorded failed; the subscription did not get the "
    "period it paid for, so the money goes back."
)


@dataclass(frozen=True)
class Resolution:
    subscription: Subscription
    payment: Payment
    changed: bool
    # The automatic refund a late success started (to send once the resolution is committed).
    automatic_refund: Refund | None = None


# --- staging a state change -------------------------------------------------------------------
def written(before: Subscription, after: Subscription) -> Subscription:
    """The state a save writes: `after` at the version after the one read."""
    return replace(after, version=before.version + 1)


def stage_change(uow: UnitOfWork, before: Subscription, outcome: Outcome) -> Subscription:
    """Register one state change: the new state (conditional on the version read), its audit
    event and its credit change (in the subscription's currency: a charge only ever spends or
    grants credit in its own). Returns the state as it will be written."""
    after = written(before, outcome.subscription)
    uow.subscriptions.save(outcome.subscription, before.version)
    uow.audit.record(after, outcome.event, changes_state=True)
    subscription_changed(uow, before, after, outcome.event.type, outcome.event.at)
    if outcome.credit_change is not None:
        change = outcome.credit_change
        uow.credit.change(after.community_id, change.profile_id, after.currency, change.delta)
    return after


def billed_to_of(profile: Profile) -> BilledTo:
    return BilledTo(profile.id, profile.name, profile.email)


def stripe_customer_of(profile: Profile, account: str | None) -> str:
    """The profile's Stripe customer on the community's current account (`account`)."""
    customer = profile.stripe_customer_on(account)
    if customer is None:
        raise InvalidRequest.for_field(CARD_FIELD, f"Profile {profile.id} has no card on file.")
    return customer


def card_summary(context: BillingContext) -> PaymentMethodSummary:
    """What a payment records of the card (from its snapshot, if any)."""
    card = context.card
    if card is None:
        return PaymentMethodSummary("card", None, None)
    return PaymentMethodSummary(
        card.get("type_of_method") or "card", card.get("brand"), card.get("last4")
    )


def failed_before_stripe(failure: PaymentFailure) -> IntentOutcome:
    """A failed outcome that is ours, not Stripe's answer (nothing sent, or nothing to read)."""
    return IntentOutcome(
        "failed", None, None, ChargeFailure(failure.code, failure.decline_code, failure.message)
    )


def _needs_authentication(payment: Payment) -> bool:
    return (
        payment.status == "failed"
        and payment.failure is not None
        and payment.failure.code == AUTHENTICATION_REQUIRED
        and payment.stripe.payment_intent_id is not None
    )


class Charging:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        gateway: PaymentGateway,
        billing: BillingReader,
        clock: Clock,
        follow_ups: UnitOfWorkFactory | None = None,
    ) -> None:
        """`follow_ups`: the unit of work for what comes after a resolution committed (sending
        an automatic refund, resolving a success found when cancelling an intent); a webhook's
        unit of work commits once, so these never go through it."""
        self._uow = uow
        self._gateway = gateway
        self._billing = billing
        self._clock = clock
        self._follow_ups = follow_ups or uow
        self.refunds = Refunds(self._follow_ups, gateway, clock, self.known_disconnected)

    def committing_with(self, uow: UnitOfWorkFactory) -> Charging:
        """The same flow, committing through another unit of work (a webhook's, which
        carries the event record)."""
        return Charging(uow, self._gateway, self._billing, self._clock, self._follow_ups)

    def context(
        self,
        community_id: str,
        profile_id: str,
        payment_method_id: str | None,
        plan_ids: Sequence[str] = (),
    ) -> BillingContext:
        return self._billing.billing_context(community_id, profile_id, payment_method_id, plan_ids)

    def known_disconnected(self, payment: Payment) -> bool:
        """Whether the Stripe account `payment` was taken on is known to have disconnected the
        platform: it is still the community's account and `account.application.deauthorized`
        flagged it (an account the community left is not followed: Stripe's refusal says it)."""
        account = payment.stripe.account_id
        if account is None:
            return False
        context = self.context(payment.community_id, payment.billed_to.profile_id, None)
        return context.community_disconnected and context.community.stripe_account_id == account

    # --- phase 1 and 2 ----------------------------------------------------------------------
    def charge(
        self,
        sub: Subscription,
        plan: ChargePlan,
        *,
        actor: Actor,
        now: datetime,
        context: BillingContext | None = None,
        on_session: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> ChargeResult:
        """Run one planned charge to completion (or to PaymentPending). `context`: the billing
        context the caller read to plan the charge (reused when it names the same profile and
        card). `on_session`: the customer is present (the pay page); a card that asks for
        authentication leaves the payment pending and the result carries the intent's
        client secret (no authentication within the recovery delay: it fails as usual).
        `before_send`: called right before the Stripe request (the rate control's wait for its
        slot)."""
        if (
            context is None
            or context.billed.id != plan.billed_to_profile_id
            or (context.card or {}).get("id") != plan.payment_method_id
        ):
            context = self.context(
                sub.community_id, plan.billed_to_profile_id, plan.payment_method_id
            )
        scheduled = actor == "scheduler"
        if context.community_disconnected and not scheduled:
            raise Conflict(
                "The community's Stripe account has disconnected the platform; nothing was charged."
            )
        if not plan.needs_stripe:
            return self._settle(sub, plan, context, actor, now)
        community = context.community
        # A scheduled charge that cannot be sent fails like a decline (dunning, retries, grace
        # end follow) rather than stall; a caller of the API gets the refusal and nothing is
        # written (docs/rules/money.md).
        refused: PaymentFailure | None = (
            ACCOUNT_DISCONNECTED if context.community_disconnected else None
        )
        customer_id: str | None = None
        try:
            customer_id = stripe_customer_of(context.billed, community.stripe_account_id)
        except InvalidRequest:
            if not scheduled:
                raise  # a caller can add a card and ask again: 400, nothing written
            refused = refused or NO_CARD_ON_ACCOUNT
        if (context.card or {}).get("detached_at"):
            if not scheduled:
                raise InvalidRequest.for_field(
                    CARD_FIELD,
                    f"Payment method {plan.payment_method_id} was detached from the owner's "
                    "Stripe customer; give the subscription another card.",
                )
            refused = refused or CARD_DETACHED
        payment = new_payment(
            plan,
            new_id("pay"),
            billed_to_of(context.billed),
            card_summary(context),
            community.stripe_account_id,
            community.fee_bps_for_charges(),
            now,
        )
        with self._uow() as uow:
            uow.subscriptions.adopt(sub)
            uow.payments.add(payment)
            payment_changed(uow, None, payment, 1, now)
            began = begin_charge(sub, plan, payment.id, now, actor, on_pay_page=on_session)
            begun = stage_change(uow, sub, began)
            uow.charge_keys.claim(sub, plan.charge_key, payment.id)
            uow.commit()
        known = (replace(payment, revision=1), begun)
        if refused is not None or customer_id is None:
            outcome = failed_before_stripe(refused or NO_CARD_ON_ACCOUNT)
        else:
            request = charge_request(
                payment, customer_id, plan.payment_method_id, on_session=on_session
            )
            outcome = self._send(request, before_send)
        if outcome.status == "requires_action":
            waiting = self._note_intent(known[0], outcome.payment_intent_id)
            return ChargeResult(begun, waiting, client_secret=outcome.client_secret)
        result = self.resolve(sub.community_id, payment.id, outcome, actor=actor, known=known)
        return ChargeResult(result.subscription, result.payment)

    def _send(
        self, request: ChargeRequest, before_send: Callable[[], None] | None = None
    ) -> IntentOutcome:
        """Phase 2: the one PaymentIntent; anything but a final answer leaves it pending."""
        payment_id = request.payment_id
        if before_send is not None:
            before_send()
        try:
            outcome = self._gateway.charge(request)
        except StripeRateLimited as error:
            raise ChargeRateLimited(
                f"Stripe is rate limiting this account; payment {payment_id} stays pending and "
                "is sent again later with the same idempotency key.",
                payment_id,
                error.code,
            ) from None
        except Unavailable as error:
            raise PaymentPending(
                f"{error.message} Payment {payment_id} stays pending and will be resolved from "
                "Stripe; it is never charged twice.",
                payment_id,
            ) from None
        if outcome.status == "pending":
            raise PaymentPending(
                f"Stripe is still processing payment {payment_id}; it will be resolved shortly.",
                payment_id,
            )
        return outcome

    def resumable(self, sub: Subscription, kinds: tuple[str, ...], now: datetime) -> Payment | None:
        """The payment of `sub`'s charge in flight, if the scheduler may send it again: a
        `kinds` payment still pending, that Stripe holds no PaymentIntent for as far as we
        know (a 429 answered its request), younger than RESUME_WINDOW (after that the
        recovery pass decides from what Stripe did)."""
        pending = sub.pending_charge
        if pending is None or pending.payment_id is None or pending.kind not in kinds:
            return None
        with self._uow() as uow:
            payment = uow.payments.find(sub.community_id, pending.payment_id)
        if payment is None or payment.status != "pending" or payment.stripe.payment_intent_id:
            return None
        if now >= payment.created_at + RESUME_WINDOW:
            return None
        return payment

    def resume(
        self,
        sub: Subscription,
        payment: Payment,
        *,
        actor: Actor,
        context: BillingContext,
        before_send: Callable[[], None] | None = None,
    ) -> ChargeResult:
        """Phase 2 and 3 again for a payment phase 1 wrote and Stripe rate limited: the same
        request with the same idempotency key (the payment id), so Stripe makes at most one
        PaymentIntent for it whatever happened before. Like a new scheduled charge, it is
        not sent to an account that disconnected the platform since (`account_disconnected`)
        nor for an owner with no customer on the payment's account (`no_card_on_account`):
        the 429 made no PaymentIntent, so it fails unsent and the failed-payment flow follows."""
        pending = sub.pending_charge
        assert pending is not None
        account = payment.stripe.account_id
        refused: PaymentFailure | None = None
        if context.community_disconnected and context.community.stripe_account_id == account:
            refused = ACCOUNT_DISCONNECTED
        try:
            customer_id = stripe_customer_of(context.billed, account)
        except InvalidRequest:
            refused = refused or NO_CARD_ON_ACCOUNT
        if refused is not None:
            outcome = failed_before_stripe(refused)
        else:
            request = charge_request(payment, customer_id, pending.payment_method_id)
            outcome = self._send(request, before_send)
        result = self.resolve(
            sub.community_id, payment.id, outcome, actor=actor, known=(payment, sub)
        )
        return ChargeResult(result.subscription, result.payment)

    def _note_intent(self, payment: Payment, intent_id: str | None) -> Payment:
        """Record the intent of a payment left waiting for the customer's authentication (so
        its confirmation and the recovery pass read that intent, never search for it)."""
        if not intent_id:
            return payment
        updated = replace(payment, stripe=replace(payment.stripe, payment_intent_id=intent_id))
        try:
            with self._uow() as uow:
                uow.payments.save(updated)
                uow.commit()
        except ConcurrentChange:
            return payment  # resolved meanwhile: the resolution has the intent id
        return replace(updated, revision=payment.revision + 1)

    def _settle(
        self,
        sub: Subscription,
        plan: ChargePlan,
        context: BillingContext,
        actor: Actor,
        now: datetime,
    ) -> ChargeResult:
        """A charge Stripe is not needed for (free plan, cheaper plan, or credit paid it all)."""
        payment: Payment | None = None
        payment_id = new_id("pay") if plan.needs_payment else None
        with self._uow() as uow:
            uow.subscriptions.adopt(sub)
            if payment_id is not None:
                pending = new_payment(
                    plan,
                    payment_id,
                    billed_to_of(context.billed),
                    card_summary(context),
                    None,
                    0,
                    now,
                )
                payment = pending.succeed(now).payment
                uow.payments.add(payment)
                payment_changed(uow, None, payment, 1, now)
            settled = settle_without_stripe(sub, plan, now, payment_id=payment_id, actor=actor)
            after = stage_change(uow, sub, settled)
            if payment_id is not None:
                uow.charge_keys.claim(sub, plan.charge_key, payment_id, "succeeded")
            uow.commit()
        return ChargeResult(after, payment)

    # --- phase 3 --------------------------------------------------------------------------------
    def resolve(
        self,
        community_id: str,
        payment_id: str,
        outcome: IntentOutcome,
        *,
        actor: Actor,
        known: tuple[Payment, Subscription] | None = None,
    ) -> Resolution:
        """Phase 3 for one payment from what Stripe reported. Idempotent and forward-only.

        `known`: the payment and subscription as phase 1 just wrote them (saves two reads; a
        concurrent resolver makes the conditional write fail and the state is read again)."""
        if outcome.status in ("pending", "requires_action"):
            raise ValueError("a pending outcome resolves nothing")
        first_try = [known]

        def step() -> Resolution:
            try:
                return self._resolve_once(community_id, payment_id, outcome, actor, first_try[0])
            except ConcurrentChange:
                first_try[0] = None  # what phase 1 wrote has moved on: read it again
                raise

        resolution = retrying(step)
        if resolution.automatic_refund is not None:
            self._send_automatic_refund(resolution, actor)
        elif resolution.changed and _needs_authentication(resolution.payment):
            return self._cancel_open_intent(resolution, actor)
        return resolution

    def _send_automatic_refund(self, resolution: Resolution, actor: Actor) -> None:
        """Send the refund a late success started. No answer: it stays pending for the
        recovery pass (which sends it again if Stripe never got it)."""
        refund = resolution.automatic_refund
        assert refund is not None
        payment = resolution.payment
        try:
            self.refunds.send(payment.community_id, payment, refund, actor)
        except RefundPending:
            logger.warning(
                "automatic refund left pending",
                extra={"payment_id": payment.id, "refund_id": refund.id},
            )
        except InvalidRequest as error:  # Stripe refused; settled failed and audited
            logger.warning(
                "automatic refund refused by Stripe",
                extra={"payment_id": payment.id, "refund_id": refund.id, "error": error.message},
            )

    def _cancel_open_intent(self, resolution: Resolution, actor: Actor) -> Resolution:
        """A payment recorded failed because the card needs authentication leaves its
        PaymentIntent open: the customer could still complete it and pay a period we recorded
        unpaid. Cancel it. Should it have succeeded meanwhile (cannot be canceled), resolve that
        success: the late-success path refunds it. Stripe unavailable: the automatic refund of
        a later success is the safety net."""
        payment = resolution.payment
        intent_id = payment.stripe.payment_intent_id
        assert intent_id is not None
        account = payment.stripe.account_id
        try:
            try:
                intent = self._gateway.cancel_intent(intent_id, account)
            except InvalidRequest:
                intent = self._gateway.retrieve_intent(intent_id, account)
        except Unavailable:
            logger.warning(
                "PaymentIntent left open: Stripe unavailable",
                extra={"payment_id": payment.id, "payment_intent_id": intent_id},
            )
            return resolution
        outcome = outcome_from_intent(intent)
        if outcome.status != "succeeded":
            return resolution
        # The subscription's outcome stays the failure; the payment's success is refunded.
        follow_up = Charging(self._follow_ups, self._gateway, self._billing, self._clock)
        follow_up.resolve(payment.community_id, payment.id, outcome, actor=actor)
        return resolution

    def _resolve_once(
        self,
        community_id: str,
        payment_id: str,
        outcome: IntentOutcome,
        actor: Actor,
        known: tuple[Payment, Subscription] | None,
    ) -> Resolution:
        with self._uow() as uow:
            if known is not None:
                payment, sub = known
                uow.subscriptions.adopt(sub)
            else:
                payment = uow.payments.get(community_id, payment_id)
                sub = uow.subscriptions.get(community_id, payment.subscription_id)
            # Never resolved before it was charged: a process whose test-clock reading is up
            # to a second old (adapters/clock.py) may resolve what another charged after a jump.
            now = max(self._clock.now(), payment.created_at)
            if outcome.status == "succeeded":
                change = payment.succeed(
                    now, payment_intent_id=outcome.payment_intent_id, charge_id=outcome.charge_id
                )
            else:
                failure = outcome.failure
                assert failure is not None
                change = payment.fail(
                    PaymentFailure(failure.code, failure.decline_code, failure.message),
                    now,
                    payment_intent_id=outcome.payment_intent_id,
                )
            if not change.changed:
                return self._fill_in_stripe_refs(uow, payment, sub, outcome)
            status: Literal["succeeded", "failed"] = (
                "succeeded" if outcome.status == "succeeded" else "failed"
            )
            written = change.payment
            automatic_refund: Refund | None = None
            if sub.pending_charge is not None and sub.pending_charge.payment_id == payment_id:
                # The payment's events first, then the subscription's it caused.
                payment_changed(uow, payment, written, payment.revision + 1, now)
                transition = (
                    apply_charge_succeeded(sub, payment_id, now, actor)
                    if status == "succeeded"
                    else apply_charge_failed(
                        sub,
                        payment_id,
                        now,
                        actor,
                        code=written.failure.code if written.failure else None,
                        decline_code=written.failure.decline_code if written.failure else None,
                    )
                )
                after = stage_change(uow, sub, transition)
                uow.charge_keys.resolve(sub, payment.charge_key, payment_id, status)
            else:
                # Late news about a payment the subscription no longer waits for: the ledger
                # follows the money; the subscription stays.
                event = AuditEvent(
                    now,
                    f"payment.{status}_late",
                    sub.status,
                    sub.status,
                    actor,
                    {"payment_id": payment_id, "previous_status": change.previous_status},
                )
                uow.audit.record(sub, event, changes_state=False)
                after = sub
                if (
                    status == "succeeded"
                    and change.previous_status == "failed"
                    and change.payment.refundable_amount > 0
                    and change.payment.stripe.payment_intent_id
                ):
                    # A success after a recorded failure paid for a period the subscription
                    # did not get: refund it, recorded with the success (exactly once: the
                    # refund id is derived from the payment id).
                    written, automatic_refund = begin_refund(
                        change.payment,
                        None,
                        LATE_SUCCESS_REFUND_REASON,
                        automatic_refund_id(payment_id),
                        "automatic",
                        now,
                    )
                    uow.payments.add_refund(community_id, automatic_refund)
                    uow.audit.record(
                        sub,
                        refund_started_event(sub, written, automatic_refund, actor, now),
                        changes_state=False,
                    )
                payment_changed(uow, payment, written, payment.revision + 1, now)
            uow.payments.save(written)
            uow.commit()
        return Resolution(
            after,
            replace(written, revision=payment.revision + 1),
            True,
            automatic_refund,
        )

    @staticmethod
    def _fill_in_stripe_refs(
        uow: UnitOfWork, payment: Payment, sub: Subscription, outcome: IntentOutcome
    ) -> Resolution:
        """A duplicate or late report: change nothing, except learning a missing intent id."""
        if payment.stripe.payment_intent_id or not outcome.payment_intent_id:
            return Resolution(sub, payment, changed=False)
        refs = replace(
            payment.stripe,
            payment_intent_id=outcome.payment_intent_id,
            charge_id=payment.stripe.charge_id or outcome.charge_id,
        )
        updated = replace(payment, stripe=refs)
        uow.payments.save(updated)
        try:
            uow.commit()
        except ConcurrentChange:
            return Resolution(sub, payment, changed=False)
        return Resolution(sub, replace(updated, revision=payment.revision + 1), changed=False)
