"""Ports: what the service layer needs from the outside world, as typed Protocols.

Adapters implement them structurally (they never import this module); `bootstrap.Container`
wires concrete adapters, and the tests wire in-memory fakes (tests/support/fakes.py).

The unit of work is the one way to write (DESIGN.md section 4): a use case reads through its
repositories, lets the domain decide, registers what changed, and commits ONCE. The adapter
turns the registered changes into one DynamoDB TransactWriteItems; the service never sees a
request shape.

    with self._uow() as uow:
        sub = uow.subscriptions.get(community_id, subscription_id)
        outcome = sub.cancel("now", now)
        stage_change(uow, sub, outcome)
        uow.commit()

`commit()` raises `ConcurrentChange` when a version/revision read has moved on (or DynamoDB
reports a transaction conflict): the caller reads again and re-decides (`retrying`).
`DuplicateEvent` when the webhook-event record registered first says the event is done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from chalicelib.domain.errors import DuplicateEvent

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.billing_context import BillingContext
    from chalicelib.adapters.stripe.payments import ChargeRequest, IntentOutcome, RefundResult
    from chalicelib.domain.events import AuditEvent
    from chalicelib.domain.payment_reports import PaymentReport
    from chalicelib.domain.payments import Payment, Refund
    from chalicelib.domain.platform_events import AccessCheck, PlatformEvent
    from chalicelib.domain.subscriptions import Subscription
    from chalicelib.domain.webhook_events import WebhookEvent


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@runtime_checkable
class AdjustableClock(Clock, Protocol):
    def move_forward_to(self, target: datetime) -> datetime:
        """Move the clock to `target` if that is still ahead, else leave it; return the new now.

        One reading decides, so a target the clock passed while the caller worked (a due time
        within the processing latency) is no error: the clock only ever moves forward.
        """
        ...

    def pinned(self, at: datetime) -> AbstractContextManager[None]:
        """Inside the block, `now()` in this thread answers `at` (no later than the clock):
        an action the test clock runs at its own due time while the clock stands at the end
        of the step. Other threads and processes read the clock as before."""
        ...


# --- repositories of the unit of work --------------------------------------------------------
class Subscriptions(Protocol):
    def find(self, community_id: str, subscription_id: str) -> Subscription | None: ...
    def get(self, community_id: str, subscription_id: str) -> Subscription: ...
    def adopt(self, sub: Subscription) -> Subscription:
        """Take a subscription read elsewhere (a sweep's snapshot, a committed earlier step)
        as the state this unit of work changes."""
        ...

    def add(self, sub: Subscription) -> None: ...
    def save(self, sub: Subscription, expected_version: int) -> None:
        """Replace the subscription at `expected_version` with `sub` (written as version
        expected_version + 1); its profile links follow."""
        ...

    def delete(self, sub: Subscription) -> None: ...


class Payments(Protocol):
    def find(self, community_id: str, payment_id: str) -> Payment | None: ...
    def get(self, community_id: str, payment_id: str) -> Payment: ...
    def find_by_payment_intent(
        self, payment_intent_id: str, community_id: str | None = None
    ) -> Payment | None: ...
    def with_subscription(
        self, community_id: str, payment_id: str, subscription_id: str
    ) -> tuple[Payment, Subscription] | None:
        """Both in one read (the webhook fast path); the subscription is adopted."""
        ...

    def expect_settled(self, report: PaymentReport) -> None:
        """Commit only while `report` changes nothing (domain `PaymentReport.changes_nothing`,
        checked on the stored payment and subscription as the commit happens). Otherwise the
        commit raises ConcurrentChange, writes nothing, and `seen_by_refused_checks` tells what
        the checks saw."""
        ...

    def seen_by_refused_checks(self) -> tuple[Payment, Subscription] | None:
        """After `expect_settled`'s commit was refused: the payment and its subscription as
        the checks saw them (what `with_subscription` reads; the subscription is adopted),
        when the refusal showed both; else None (read them)."""
        ...

    def add(self, payment: Payment) -> None: ...
    def save(self, payment: Payment) -> None:
        """Replace the payment read at `payment.revision` (written as revision + 1)."""
        ...

    def add_refund(self, community_id: str, refund: Refund) -> None: ...
    def save_refund(self, community_id: str, refund: Refund) -> None: ...
    def refunds(self, community_id: str, payment_id: str) -> list[Refund]: ...


class ChargeKeys(Protocol):
    def claim(
        self, sub: Subscription, charge_key: str, payment_id: str, status: str = "pending"
    ) -> None:
        """At most one live charge per (subscription, period, kind): the commit fails with
        ConcurrentChange when another pending or successful charge holds the key."""
        ...

    def resolve(self, sub: Subscription, charge_key: str, payment_id: str, status: str) -> None: ...


class AuditTrail(Protocol):
    def record(self, sub: Subscription, event: AuditEvent, *, changes_state: bool) -> None:
        """`sub` as written: a state change records at its new version; a side event
        (refund, dispute, late payment news) at the current one."""
        ...


class CreditLedger(Protocol):
    def change(self, community_id: str, profile_id: str, currency: str, delta: int) -> None:
        """Add `delta` to a profile's credit in `currency` (spending fails the commit if it
        would go negative). Credit is kept per currency and never spent in another."""
        ...


class CardSnapshots(Protocol):
    def find(self, community_id: str, payment_method_id: str) -> Mapping[str, Any] | None: ...
    def update_from_event(
        self,
        community_id: str,
        payment_method_id: str,
        changes: Mapping[str, Any],
        event_created: int,
    ) -> None:
        """Apply card news unless a later event was applied already."""
        ...

    def mark_detached(self, community_id: str, payment_method_id: str, detached_at: str) -> None:
        """Flag the card detached, whatever card news came before or after: a detached card
        stays detached (an update of the same second must not hide it)."""
        ...


class CommunityFlags(Protocol):
    def mark_deauthorized(self, community_id: str, account: str, at: datetime) -> None: ...


class Outbox(Protocol):
    """Events to the platform, written in the same commit as the change they report
    (docs/events.md). However many are staged, they take ONE item of the transaction."""

    def add(self, event: PlatformEvent) -> None: ...
    def check_access(self, check: AccessCheck) -> None:
        """Ask the publisher to send access.granted/revoked for these profiles if their
        access changed."""
        ...


class UnitOfWork(Protocol):
    @property
    def subscriptions(self) -> Subscriptions: ...
    @property
    def payments(self) -> Payments: ...
    @property
    def charge_keys(self) -> ChargeKeys: ...
    @property
    def audit(self) -> AuditTrail: ...
    @property
    def credit(self) -> CreditLedger: ...
    @property
    def cards(self) -> CardSnapshots: ...
    @property
    def communities(self) -> CommunityFlags: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def committed(self) -> bool: ...

    def record_webhook_event(self, event: WebhookEvent) -> None:
        """Write the event's record first in this commit (applied at most once)."""
        ...

    def commit(self) -> None: ...
    def __enter__(self) -> UnitOfWork: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]

__all__ = ["DuplicateEvent"]


# --- reads and gateways ------------------------------------------------------------------------
class BillingReader(Protocol):
    def billing_context(
        self,
        community_id: str,
        profile_id: str,
        payment_method_id: str | None,
        plan_ids: Sequence[str] = (),
    ) -> BillingContext:
        """Community, billed profile, card snapshot (and the stored plans named): one read."""
        ...


class StripeCallBudget(Protocol):
    """The scheduled work's share of one Stripe account's rate limit, shared by every worker
    (DESIGN.md, rate control). The admin API does not take from it: its reserve is what the
    budget never grants."""

    def acquire(self, account: str) -> Callable[[], None] | None:
        """A token for one scheduled call on `account`: a function that waits for the token's
        slot (at most a short wait; call it right before the Stripe request, so calls reach
        Stripe paced), or None when the account has no slot that soon (defer the work)."""
        ...

    def rate_limited(self, account: str) -> None:
        """Stripe answered 429 (rate limit or `lock_timeout`): lower the account's share."""
        ...

    def retry_after(self, account: str) -> float:
        """Seconds until a call deferred now should come back: the account's next free slot
        as this worker knows it, each deferral a slot later than the one before (deferred work
        comes back in order at the account's pace, not all at once, never with a back-off
        that leaves the account's slots unused)."""
        ...

    def spacing_seconds(self) -> float:
        """Seconds between two scheduled calls on one account at its full share (the sweep
        spaces each community's messages by it); 0 when nothing is limited."""
        ...


class PaymentGateway(Protocol):
    def charge(self, request: ChargeRequest) -> IntentOutcome: ...
    def retrieve_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        """The PaymentIntent as Stripe has it; NotFound when the account has none so named."""
        ...

    def find_intents_by_metadata(
        self, key: str, value: str, stripe_account_id: str | None
    ) -> list[dict[str, Any]]: ...
    def confirm_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        """Confirm an on-session PaymentIntent once the customer authenticated; the intent as
        Stripe now holds it (a decline included)."""
        ...

    def cancel_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        """Cancel an open PaymentIntent; the intent as Stripe now holds it. InvalidRequest when
        it can no longer be canceled (e.g. it succeeded meanwhile)."""
        ...

    def refund(
        self,
        payment_intent_id: str,
        amount: int,
        stripe_account_id: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> RefundResult: ...
    def find_refund(
        self, payment_intent_id: str, refund_id: str, amount: int, stripe_account_id: str | None
    ) -> RefundResult | None:
        """The Stripe refund we sent for our refund `refund_id` of `amount` (metadata.refund_id
        and the amount: the account's owner can refund the charge under our id), or None when
        Stripe has none."""
        ...
