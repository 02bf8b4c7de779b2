"""Dunning emails to the owner of a subscription whose payment failed (issue 15, docs/DESIGN.md
section 11).

Four emails, to the owner only (a customer: dependents have no address), each once per event:
- payment failed: after a failed renewal or a failed retry (`subscription.payment_failed`);
- last reminder: 48 h before grace ends (the `dunning_reminder` due group, jobs/registry.py);
- cancelled for non-payment (`subscription.cancelled` with reason `payment_failed`);
- payment received: a payment brought a failed_payment subscription back to `active`
  (`subscription.reactivated` from `failed_payment`: a retry, a reactivation, the pay-now page).

Where they come from: the outbox of issue 13 (docs/events.md). `DunningMailer.handle(events)`
runs for every outbox record the publisher publishes (EventPublisher's record listeners), so an
email exists only for a committed change, and never touches the money path. Each event id
(stable: it is stored in the record) is claimed per email kind with a conditional write before
SES is called; a record published again (a Streams retry, a redelivered batch, a replay, a
crash after the send) finds the claim and sends nothing. The reminder is claimed per
(subscription, grace end). The email is composed only once claimed (its reads, and the pay-now
link, whose issuing retires the older links), so a replay costs one conditional put per email.

At most once, in one case at least once: a crash between SES accepting the email and the claim
being marked sent leaves the claim "sending"; after its lease (10 minutes) a retry sends again.
SES has no idempotency key, so that window cannot be closed; it is one Lambda crash wide.

A transient SES or DynamoDB failure releases the claim and raises, so the record is
published again later; a permanent one (an address SES refuses) is logged, the claim is marked
failed, and publishing goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.adapters.dynamodb.transactions import is_transient
from chalicelib.adapters.email import Email
from chalicelib.domain.communities import Community
from chalicelib.domain.currencies import currency
from chalicelib.domain.declines import (
    decline_reason,
    is_hard_decline,
    needs_another_card,
    waits_on_the_community,
)
from chalicelib.domain.dunning import Reminder, last_reminder_at, next_retry_shown
from chalicelib.domain.errors import Conflict, NotFound, Unavailable
from chalicelib.domain.payments import Payment
from chalicelib.domain.platform_events import PlatformEvent
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Subscription
from chalicelib.observability import logger
from chalicelib.services.ports import Clock, UnitOfWorkFactory
from chalicelib.services.receipts import card_text, order_summary, when

PAYMENT_FAILED = "payment_failed"
# The charges nobody watches: only their declines are emailed.
AUTOMATIC_CHARGE_KINDS = frozenset({"renewal", "retry"})
LAST_REMINDER = "last_reminder"
CANCELLED = "cancelled"
PAYMENT_RECEIVED = "payment_received"


# --- ports ------------------------------------------------------------------------------------
class PaymentLink(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...


class IssuesPaymentLinks(Protocol):
    """services/payment_links.py's `PaymentLinks` (issue 15's one shared interface)."""

    def issue(self, community_id: str, subscription_id: str, now: datetime) -> PaymentLink:
        """A new link for a failed_payment subscription (older ones stop working); Conflict
        otherwise."""
        ...


class Mailer(Protocol):
    def send(self, email: Email) -> str: ...


class ProfileFinder(Protocol):
    def find(self, community_id: str, profile_id: str) -> Profile | None: ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class DunningLedger(Protocol):
    """What was emailed (claims) and the scheduled last reminder (adapters/dynamodb/dunning.py)."""

    def claim(self, community_id: str, subscription_id: str, key: str) -> bool:
        """Take the right to send the email `key` (False: sent, or being sent, already)."""
        ...

    def mark_sent(
        self, community_id: str, subscription_id: str, key: str, message_id: str
    ) -> None: ...

    def mark_failed(
        self, community_id: str, subscription_id: str, key: str, error: str
    ) -> None: ...

    def release(self, community_id: str, subscription_id: str, key: str) -> None:
        """Give a claim back (the send failed and will be tried again)."""
        ...

    def schedule_reminder(self, community_id: str, reminder: Reminder) -> None:
        """Due at `reminder.due_at`; a reminder of the same grace period is kept as it is, and
        one of an earlier grace period (a record published again) never replaces it."""
        ...

    def reminder(self, community_id: str, subscription_id: str) -> Reminder | None: ...

    def reminder_done(
        self, community_id: str, subscription_id: str, grace_ends_at: datetime
    ) -> None:
        """No longer due (sent or moot), unless a later grace period's reminder replaced it."""
        ...


# --- text ---------------------------------------------------------------------------------------
def _parse(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


@dataclass(frozen=True)
class _Context:
    owner: Profile
    community: Community
    plan_name: str


Composed = tuple[_Context, str, str]  # to whom (and about what), subject, body


class DunningMailer:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        profiles: ProfileFinder,
        communities: CommunityReader,
        ledger: DunningLedger,
        mailer: Mailer,
        links: IssuesPaymentLinks,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._profiles = profiles
        self._communities = communities
        self._ledger = ledger
        self._mailer = mailer
        self._links = links
        self._clock = clock

    # --- the outbox listener -------------------------------------------------------------------
    def handle(self, events: Sequence[PlatformEvent]) -> list[str]:
        """The emails one published outbox record owes; returns the kinds sent now."""
        sent: list[str] = []
        for event in events:
            kind = _email_kind(event)
            if kind is None:
                continue
            if kind == PAYMENT_FAILED:
                done = self._payment_failed(event, events)
            elif kind == CANCELLED:
                done = self._cancelled(event)
            else:
                done = self._payment_received(event, events)
            if done:
                sent.append(kind)
        return sent

    # --- the scheduled last reminder (due group dunning_reminder) ------------------------------
    def send_last_reminder(self, community_id: str, subscription_id: str, now: datetime) -> str:
        """-> "reminder_sent" | "reminder_already_sent" (or no address to send to) |
        "reminder_moot" (paid, cancelled or a later failure since) | "not_due" | "missing"."""
        reminder = self._ledger.reminder(community_id, subscription_id)
        if reminder is None:
            return "missing"
        if now < reminder.due_at:
            return "not_due"
        with self._uow() as uow:
            sub = uow.subscriptions.find(community_id, subscription_id)
        if (
            sub is None
            or sub.status != "failed_payment"
            or sub.grace_ends_at != reminder.grace_ends_at
            or now >= reminder.grace_ends_at
        ):
            self._ledger.reminder_done(community_id, subscription_id, reminder.grace_ends_at)
            return "reminder_moot"
        key = f"{LAST_REMINDER}#{reminder.grace_ends_at.isoformat()}"

        def compose() -> Composed | None:
            context = self._context(community_id, sub.owner_id, subscription_id, sub.plan.name)
            if context is None:
                return None
            return context, *self._reminder_email(context, sub, reminder)

        sent = self._send_once(community_id, subscription_id, key, compose)
        self._ledger.reminder_done(community_id, subscription_id, reminder.grace_ends_at)
        return "reminder_sent" if sent else "reminder_already_sent"

    # --- each email ----------------------------------------------------------------------------
    # Each is claimed first and composed (reads, the link) only once claimed: a replayed record
    # costs one conditional put per email.
    def _payment_failed(self, event: PlatformEvent, events: Sequence[PlatformEvent]) -> bool:
        data = event.data
        community_id, subscription_id = event.community_id, str(data["id"])
        paid = self._payment_event(event, events, "payment.failed")
        if paid is None:
            logger.warning("dunning_no_payment", extra={"event_id": event.id})
            return False
        if paid.data.get("kind") not in AUTOMATIC_CHARGE_KINDS:
            # The owner (pay page) or the operator saw this decline as it happened; a new
            # email would also issue a new link and retire the one being paid through.
            return False
        grace_ends_at = _parse(data.get("grace_ends_at"))
        if grace_ends_at is not None:
            # Scheduled before the email is claimed: a crash after the send still leaves it.
            # `created_at`: this failure's time (a retry's is later than the first failure's).
            due = last_reminder_at(event.created_at, grace_ends_at)
            if due is not None:
                amount, code = int(paid.data["total"]), str(paid.data["currency"])
                self._ledger.schedule_reminder(
                    community_id, Reminder(subscription_id, grace_ends_at, due, amount, code)
                )

        def compose() -> Composed | None:
            payment = self._payment(community_id, str(paid.data["id"]))
            context = self._context(community_id, str(data["owner_id"]), subscription_id)
            if payment is None or context is None:
                return None
            return context, *self._failed_email(context, data, payment, grace_ends_at)

        return self._send_once(
            community_id, subscription_id, f"{PAYMENT_FAILED}#{event.id}", compose
        )

    def _cancelled(self, event: PlatformEvent) -> bool:
        data = event.data
        community_id, subscription_id = event.community_id, str(data["id"])

        def compose() -> Composed | None:
            context = self._context(community_id, str(data["owner_id"]), subscription_id)
            if context is None:
                return None
            cancelled_at = _parse(data.get("cancelled_at")) or event.created_at
            plan, community = context.plan_name, context.community.name
            subject = f"Your {plan} membership at {community} was cancelled"
            body = (
                f"Hello {context.owner.name},\n\n"
                f"your {plan} membership at {community} (subscription {subscription_id}) was "
                f"cancelled on {when(cancelled_at)} because its payment could not be collected "
                "before the grace period ended. Its members no longer have access.\n\n"
                f"To join again, please contact {community}.\n"
            )
            return context, subject, body

        return self._send_once(community_id, subscription_id, f"{CANCELLED}#{event.id}", compose)

    def _payment_received(self, event: PlatformEvent, events: Sequence[PlatformEvent]) -> bool:
        data = event.data
        community_id, subscription_id = event.community_id, str(data["id"])
        paid = self._payment_event(event, events, "payment.succeeded")
        if paid is None:
            return False  # nothing was charged (no payment): no receipt to send

        def compose() -> Composed | None:
            payment = self._payment(community_id, str(paid.data["id"]))
            context = self._context(community_id, str(data["owner_id"]), subscription_id)
            if payment is None or context is None:
                return None
            money = currency(payment.currency).format
            period = data.get("current_period") or {}
            start, end = _parse(period.get("start")), _parse(period.get("end"))
            period_text = (
                f" Its new billing period runs from {when(start)} to {when(end)}."
                if start is not None and end is not None
                else ""
            )
            subject = f"Payment received: {money(payment.total)} for {context.plan_name}"
            body = (
                f"Hello {context.owner.name},\n\n"
                f"thank you: we received your payment of {money(payment.total)} "
                f"({card_text(payment)}) for your {context.plan_name} membership at "
                f"{context.community.name}. The membership is active again.{period_text}\n\n"
                f"Order summary (payment {payment.id}):\n{order_summary(payment)}\n"
            )
            return context, subject, body

        return self._send_once(
            community_id, subscription_id, f"{PAYMENT_RECEIVED}#{event.id}", compose
        )

    def _failed_email(
        self,
        context: _Context,
        data: Any,
        payment: Payment,
        grace_ends_at: datetime | None,
    ) -> tuple[str, str]:
        money = currency(payment.currency).format
        failure = payment.failure
        code = failure.code if failure else None
        decline_code = failure.decline_code if failure else None
        next_retry = next_retry_shown(_parse(data.get("next_retry_at")), grace_ends_at)
        if is_hard_decline(code, decline_code):
            retry_text = (
                "No more automatic retries: your bank asked us not to charge this card again."
            )
        elif needs_another_card(code):
            retry_text = (
                "No automatic retry can charge the card on file: please pay with another card."
            )
        elif next_retry is not None and waits_on_the_community(code):
            retry_text = f"We will try again on {when(next_retry)}."
        elif next_retry is not None:
            retry_text = f"We will try the card again on {when(next_retry)}."
        else:
            retry_text = "No more automatic retries are scheduled."
        cancel_at = _parse(data.get("cancel_at")) or grace_ends_at
        cancel_text = (
            f"Unless it is paid, the membership will be cancelled on {when(cancel_at)}."
            if cancel_at is not None
            else ""
        )
        subject = f"Payment failed for your {context.plan_name} membership"
        body = (
            f"Hello {context.owner.name},\n\n"
            f"we could not collect the payment for your {context.plan_name} membership at "
            f"{context.community.name} (subscription {data['id']}).\n\n"
            f"Amount: {money(payment.total)}\n"
            f"Card: {card_text(payment)}\n"
            f"Reason: {decline_reason(code, decline_code)}\n"
            f"Next attempt: {retry_text}\n"
            f"{cancel_text}\n\n"
            f"{self._what_to_do(context, code, payment.community_id, str(data['id']))}"
        )
        return subject, body

    def _what_to_do(
        self, context: _Context, code: str | None, community_id: str, subscription_id: str
    ) -> str:
        """The pay-now link, unless only the community can clear the failure: a link then leads
        to a page that cannot take the payment, and issuing one would retire a working one."""
        if waits_on_the_community(code):
            return (
                f"Nothing is needed from you now: {context.community.name} has to reconnect its "
                "payment account before the payment can be taken.\n"
            )
        return self._link_text(community_id, subscription_id)

    def _reminder_email(
        self, context: _Context, sub: Subscription, reminder: Reminder
    ) -> tuple[str, str]:
        money = currency(reminder.currency).format
        subject = (
            f"Last reminder: your {context.plan_name} membership ends on "
            f"{reminder.grace_ends_at.strftime('%B %-d, %Y')}"
        )
        body = (
            f"Hello {context.owner.name},\n\n"
            f"the payment of {money(reminder.amount)} for your {context.plan_name} membership "
            f"at {context.community.name} (subscription {sub.id}) is still outstanding. "
            f"Unless it is paid, the membership will be cancelled on "
            f"{when(reminder.grace_ends_at)} and its members will lose access.\n\n"
            f"{self._link_text(sub.community_id, sub.id)}"
        )
        return subject, body

    def _link_text(self, community_id: str, subscription_id: str) -> str:
        """Issued when the email is written (after its claim): a new link invalidates the older
        ones, so the newest email always carries the working link."""
        try:
            link = self._links.issue(community_id, subscription_id, self._clock.now())
        except (Conflict, NotFound):
            return (
                "This subscription is no longer waiting for a payment, so there is no link to "
                "pay: nothing more is due.\n"
            )
        return f"Pay now: {link.url}\n(This link works until {when(link.expires_at)}.)\n"

    # --- shared ---------------------------------------------------------------------------------
    def _send_once(
        self,
        community_id: str,
        subscription_id: str,
        key: str,
        compose: Callable[[], Composed | None],
    ) -> bool:
        """Claim `key`, compose the email (reads, the link: only once claimed) and send it."""
        if not self._ledger.claim(community_id, subscription_id, key):
            return False
        try:
            composed = compose()
            if composed is None:  # no one to write to (no customer address, payment gone)
                self._ledger.mark_failed(community_id, subscription_id, key, "no_address")
                return False
            context, subject, body = composed
            email = Email(to=context.owner.email or "", subject=subject, body=body)
            message_id = self._mailer.send(email)
        except Exception as error:
            if isinstance(error, Unavailable) or is_transient(error):
                self._ledger.release(community_id, subscription_id, key)
                raise
            logger.exception("dunning_email_failed", extra={"key": key})
            self._ledger.mark_failed(community_id, subscription_id, key, type(error).__name__)
            return False
        self._ledger.mark_sent(community_id, subscription_id, key, message_id)
        logger.info("dunning_email_sent", extra={"key": key, "subscription_id": subscription_id})
        return True

    def _context(
        self,
        community_id: str,
        owner_id: str,
        subscription_id: str,
        plan_name: str | None = None,
    ) -> _Context | None:
        """The owner to write to (a customer with an email: dependents have none), the
        community and the plan's name (read from the subscription unless given)."""
        owner = self._profiles.find(community_id, owner_id)
        if owner is None or not owner.is_customer or not owner.email:
            logger.info("dunning_no_address", extra={"profile_id": owner_id})
            return None
        try:
            community = self._communities.get(community_id)
        except NotFound:
            return None
        if plan_name is None:
            with self._uow() as uow:
                sub = uow.subscriptions.find(community_id, subscription_id)
            plan_name = sub.plan.name if sub is not None else "membership"
        return _Context(owner, community, plan_name)

    def _payment(self, community_id: str, payment_id: str) -> Payment | None:
        with self._uow() as uow:
            return uow.payments.find(community_id, payment_id)

    @staticmethod
    def _payment_event(
        event: PlatformEvent, events: Sequence[PlatformEvent], payment_type: str
    ) -> PlatformEvent | None:
        """The payment event the record reports with the subscription's change."""
        subscription_id = event.data["id"]
        for other in events:
            if other.type == payment_type and other.data.get("subscription_id") == subscription_id:
                return other
        return None


def _email_kind(event: PlatformEvent) -> str | None:
    if not event.type.startswith("subscription."):
        return None
    if event.type == "subscription.payment_failed":
        return PAYMENT_FAILED
    if event.type == "subscription.cancelled":
        return CANCELLED if event.data.get("cancellation_reason") == "payment_failed" else None
    if event.type == "subscription.reactivated":
        before = (event.previous_attributes or {}).get("status")
        return PAYMENT_RECEIVED if before == "failed_payment" else None
    return None
