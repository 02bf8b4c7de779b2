"""The subscription aggregate: the state machine of DESIGN.md section 2. Pure; `now` is passed in.

Public API for the service layer (every call returns a new object; nothing is mutated). The
aggregate's state and views live here; its operations are grouped by concern:

Construction and plain transitions -> `Outcome(subscription, event, credit_change)`:
- `Subscription.create(subscription_id=, community_id=, plan=, owner=, member_ids=,
  billing_cycle=, payment_method_id=, waive_activation_fee=, now=)`            -> inactive
- `sub.ensure_deletable(now) -> AuditEvent`          DELETE (inactive only)
- `sub.cancel("period_end" | "now", now)`, `sub.resume(now)`
- `sub.expire(now)`, `sub.end_grace(now)`            scheduler actions (see `next_action`)
- `subscription_changes`: `update(sub, SubscriptionUpdate(...), now)` (PATCH),
  `remove_member`, `restore_member`, `change_plan_at_period_end` (changes that charge nothing).

Charging (two-phase, DESIGN.md section 6):
- `charge_planning`: `plan_activation(sub, now, owner_credit=, ...)`, `plan_renewal`,
  `preview_renewal`, `plan_retry`, `plan_reactivation`, `plan_add_members`, `plan_change_now`
  -> `ChargePlan` (billing/charges.py).
- `charge_outcomes`: `begin_charge(sub, charge, payment_id, now)`, then
  `apply_charge_succeeded(sub, payment_id, now)` / `apply_charge_failed(sub, payment_id, now)`,
  or `settle_without_stripe(sub, charge, now, payment_id=)` when no Stripe call is needed.
While a charge is pending the subscription takes no other change (Conflict) and has no
`next_action`; resolution needs only the stored subscription and the payment id.

`next_action -> ScheduledAction(action, due_at) | None` tells the scheduler what is due when:
"renew" (active, period end), "expire" (expiring, cancel_at), "retry" / "end_grace"
(failed_payment).
`version` is the stored version this object was read at: the domain never changes it; the
repository writes `version + 1` conditioned on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from chalicelib.domain.billing.charges import PendingCharge, PlanSnapshot, plan_snapshot
from chalicelib.domain.billing.lines import CarriedAmount
from chalicelib.domain.billing.pricing import initial_fee
from chalicelib.domain.currencies import ensure_within_maximum
from chalicelib.domain.errors import ChargeInProgress, Conflict, InvalidRequest
from chalicelib.domain.events import Actor, AuditEvent, DetailValue, audit_event
from chalicelib.domain.members import Member, ensure_unique_ids
from chalicelib.domain.periods import Period, ensure_utc, period_bounds
from chalicelib.domain.plans import BILLING_CYCLES, BillingCycle, Plan
from chalicelib.domain.platform_events import utc_text
from chalicelib.domain.profiles import Profile

SubscriptionStatus = Literal["inactive", "active", "failed_payment", "expiring", "cancelled"]
STATUSES: tuple[SubscriptionStatus, ...] = (
    "inactive",
    "active",
    "failed_payment",
    "expiring",
    "cancelled",
)
CancellationReason = Literal["requested", "payment_failed", "expired"]
CancelTiming = Literal["period_end", "now"]
ActionType = Literal["renew", "expire", "retry", "end_grace"]
ACCESS_STATUSES: tuple[SubscriptionStatus, ...] = ("active", "expiring")


@dataclass(frozen=True)
class PendingChanges:
    """Changes queued for the next renewal (API: `pending_changes: {billing_cycle?, plan_id?}`)."""

    billing_cycle: BillingCycle | None = None
    plan: PlanSnapshot | None = None

    @property
    def plan_id(self) -> str | None:
        return self.plan.plan_id if self.plan else None

    @property
    def empty(self) -> bool:
        return self.billing_cycle is None and self.plan is None


NO_CHANGES = PendingChanges()


@dataclass(frozen=True)
class ScheduledAction:
    action: ActionType
    due_at: datetime


@dataclass(frozen=True)
class CreditChange:
    """Add `delta` (negative: spent or reserved) to `profile_id`'s credit balance."""

    profile_id: str
    delta: int


@dataclass(frozen=True)
class Outcome:
    subscription: Subscription
    event: AuditEvent
    credit_change: CreditChange | None = None


@dataclass(frozen=True)
class Subscription:
    id: str
    community_id: str
    status: SubscriptionStatus
    plan: PlanSnapshot
    billing_cycle: BillingCycle
    owner_id: str
    payment_method_id: str | None
    members: tuple[Member, ...]
    waive_activation_fee: bool
    created_at: datetime
    version: int = 1
    former_members: tuple[Member, ...] = ()
    period_anchor: datetime | None = None
    period_index: int = 0
    pending_changes: PendingChanges = field(default=NO_CHANGES)
    cancel_at: datetime | None = None
    failed_at: datetime | None = None
    next_retry_at: datetime | None = None
    grace_ends_at: datetime | None = None
    retry_count: int = 0
    cancelled_at: datetime | None = None
    cancellation_reason: CancellationReason | None = None
    activated_at: datetime | None = None
    pending_charge: PendingCharge | None = None
    # Sub-minimum amounts not charged yet, charged once with the next charge (billing.lines).
    carried: tuple[CarriedAmount, ...] = ()

    # ------------------------------------------------------------------ views

    @property
    def plan_id(self) -> str:
        return self.plan.plan_id

    @property
    def currency(self) -> str:
        return self.plan.currency

    @property
    def unit_amount(self) -> int:
        return self.plan.unit_amount(self.billing_cycle)

    @property
    def plan_ids(self) -> tuple[str, ...]:
        """Its plan's id and that of a queued plan change (the plans a renewal may read)."""
        queued = self.pending_changes.plan_id
        return (self.plan_id,) if queued is None else (self.plan_id, queued)

    @property
    def next_plan(self) -> PlanSnapshot:
        """The plan its next renewal or retry charges: a queued plan change, else its own."""
        return self.pending_changes.plan or self.plan

    @property
    def current_period(self) -> Period | None:
        if self.period_anchor is None or self.period_index < 1:
            return None
        return period_bounds(self.period_anchor, self.billing_cycle, self.period_index)

    @property
    def member_ids(self) -> list[str]:
        return [member.profile_id for member in self.members]

    def member(self, profile_id: str) -> Member | None:
        for member in self.members:
            if member.profile_id == profile_id:
                return member
        return None

    def staying_members(self) -> tuple[Member, ...]:
        """Members without a pending removal: the ones billed at the next renewal."""
        return tuple(m for m in self.members if not m.removal_pending)

    def grants_access(self, profile_id: str, now: datetime) -> bool:
        if self.status not in ACCESS_STATUSES:
            return False
        member = self.member(profile_id)
        return member is not None and member.is_current(now)

    @property
    def next_action(self) -> ScheduledAction | None:
        if self.pending_charge is not None:
            return None
        if self.status == "active":
            period = self.current_period
            return ScheduledAction("renew", period.end) if period else None
        if self.status == "expiring" and self.cancel_at is not None:
            return ScheduledAction("expire", self.cancel_at)
        if self.status == "failed_payment" and self.grace_ends_at is not None:
            if self.next_retry_at is not None and self.next_retry_at < self.grace_ends_at:
                return ScheduledAction("retry", self.next_retry_at)
            return ScheduledAction("end_grace", self.grace_ends_at)
        return None

    # ------------------------------------------------------------ construction

    @classmethod
    def create(
        cls,
        *,
        subscription_id: str,
        community_id: str,
        plan: Plan,
        owner: Profile,
        member_ids: Sequence[str],
        billing_cycle: BillingCycle,
        payment_method_id: str | None,
        waive_activation_fee: bool,
        now: datetime,
        actor: Actor = "api",
    ) -> Outcome:
        ensure_utc(now)
        plan.ensure_open_for_new_subscriptions()
        ensure_cycle(billing_cycle)
        plan.unit_amount(billing_cycle)
        owner.ensure_customer("owner_id")
        snapshot = plan_snapshot(plan)
        ensure_unique_ids(member_ids, "member_ids")
        ensure_capacity(snapshot, len(member_ids), "member_ids")
        members = tuple(
            Member(pid, now, initial_fee(snapshot, waive_activation_fee)) for pid in member_ids
        )
        sub = cls(
            id=subscription_id,
            community_id=community_id,
            status="inactive",
            plan=snapshot,
            billing_cycle=billing_cycle,
            owner_id=owner.id,
            payment_method_id=payment_method_id,
            members=members,
            waive_activation_fee=waive_activation_fee,
            created_at=now,
        )
        event = audit_event(
            now,
            "subscription.created",
            None,
            "inactive",
            actor,
            plan_id=plan.id,
            owner_id=owner.id,
            member_ids=list(member_ids),
            billing_cycle=billing_cycle,
        )
        return Outcome(sub, event)

    # ------------------------------------------------------------ lifecycle

    def ensure_deletable(self, now: datetime, actor: Actor = "api") -> AuditEvent:
        if self.status != "inactive":
            raise Conflict(f"Only inactive subscriptions are deleted; this one is {self.status}.")
        self.ensure_no_pending_charge()
        return audit_event(now, "subscription.deleted", "inactive", None, actor)

    def cancel(self, at: CancelTiming, now: datetime, actor: Actor = "api") -> Outcome:
        ensure_utc(now)
        self.ensure_no_pending_charge()
        if at not in ("period_end", "now"):
            raise InvalidRequest.for_field("at", "Must be period_end or now.")
        if self.status == "inactive":
            raise Conflict("An inactive subscription is deleted, not cancelled.")
        if self.status == "cancelled":
            raise Conflict("The subscription is already cancelled.")
        if at == "period_end":
            if self.status != "active":
                raise Conflict(f"A {self.status} subscription cannot be cancelled at period end.")
            period = self.require_period()
            # Queued changes stay (they come back on resume; expiry clears them).
            updated = replace(self, status="expiring", cancel_at=period.end)
            event = audit_event(
                now,
                "subscription.cancel_scheduled",
                self.status,
                "expiring",
                actor,
                cancel_at=utc_text(period.end),
            )
            return Outcome(updated, event)
        return self._cancelled(now, "requested", actor)

    def resume(self, now: datetime, actor: Actor = "api") -> Outcome:
        ensure_utc(now)
        if self.status != "expiring":
            raise Conflict(f"Only expiring subscriptions resume; this one is {self.status}.")
        self.ensure_no_pending_charge()
        if self.cancel_at is not None and now >= self.cancel_at:
            raise Conflict(
                f"The subscription ended at {self.cancel_at.isoformat()} (its expiration runs "
                "shortly); it can no longer be resumed."
            )
        updated = replace(self, status="active", cancel_at=None)
        return Outcome(
            updated, audit_event(now, "subscription.resumed", "expiring", "active", actor)
        )

    def expire(self, now: datetime, actor: Actor = "scheduler") -> Outcome:
        """expiring -> cancelled(expired) once the period has ended."""
        ensure_utc(now)
        if self.status != "expiring" or self.cancel_at is None:
            raise Conflict(f"Only expiring subscriptions expire; this one is {self.status}.")
        if now < self.cancel_at:
            raise Conflict("The subscription does not expire before its period ends.")
        return self._cancelled(now, "expired", actor)

    def end_grace(self, now: datetime, actor: Actor = "scheduler") -> Outcome:
        """failed_payment -> cancelled(payment_failed) once the grace period has ended."""
        ensure_utc(now)
        if self.status != "failed_payment" or self.grace_ends_at is None:
            raise Conflict(f"Only failed_payment subscriptions end grace; this is {self.status}.")
        self.ensure_no_pending_charge()
        if now < self.grace_ends_at:
            raise Conflict("The grace period has not ended yet.")
        return self._cancelled(now, "payment_failed", actor)

    def _cancelled(self, now: datetime, reason: CancellationReason, actor: Actor) -> Outcome:
        updated = replace(
            self,
            status="cancelled",
            cancelled_at=now,
            cancellation_reason=reason,
            cancel_at=None,  # API.md: set only while expiring or failed_payment
            next_retry_at=None,
            pending_changes=NO_CHANGES,
        )
        event_type = "subscription.expired" if reason == "expired" else "subscription.cancelled"
        event = audit_event(now, event_type, self.status, "cancelled", actor, reason=reason)
        return Outcome(updated, event)

    def refresh_plan_terms(self, plan: Plan) -> Subscription:
        """Pick up a PATCHed plan's name, grace days, retry schedule and max members."""
        if plan.id != self.plan_id:
            raise ValueError("refresh_plan_terms takes the subscription's own plan")
        return replace(self, plan=plan_snapshot(plan))

    def with_latest_plan_terms(self, stored_plans: Mapping[str, Plan]) -> Subscription:
        """Its plan and its queued plan change on the stored plans' latest terms (name, grace
        days, retry schedule, max members), for those of `stored_plans` (by id) given."""
        current = stored_plans.get(self.plan_id)
        refreshed = self if current is None else self.refresh_plan_terms(current)
        queued = self.pending_changes.plan_id
        latest_queued = stored_plans.get(queued) if queued is not None else None
        if latest_queued is None:
            return refreshed
        pending = replace(self.pending_changes, plan=plan_snapshot(latest_queued))
        return replace(refreshed, pending_changes=pending)

    # ------------------------------------------------------------ guards (also for the
    # operations in subscription_changes and billing)

    def ensure_status(self, status: SubscriptionStatus, what: str) -> None:
        if self.status != status:
            raise Conflict(f"Only {status} subscriptions: {what}; this one is {self.status}.")

    def ensure_no_pending_charge(self) -> None:
        if self.pending_charge is not None:
            raise ChargeInProgress(
                f"Payment {self.pending_charge.payment_id} is in progress; try again shortly."
            )

    def require_period(self) -> Period:
        period = self.current_period
        if period is None:
            raise Conflict("The subscription has no current period.")
        return period

    def require_anchor(self) -> datetime:
        if self.period_anchor is None:
            raise Conflict("The subscription has no current period.")
        return self.period_anchor

    def require_payment_method(self) -> str:
        if not self.payment_method_id:
            raise InvalidRequest.for_field("payment_method_id", "A payment method is needed.")
        return self.payment_method_id


# ---------------------------------------------------------------- helpers

# The most members one subscription holds (a plan's max_members may lower it). The stored
# subscription (members twice while a charge is in flight) stays far below DynamoDB's 400 KB.
MAX_MEMBERS = 1000
# Former members kept on the subscription (the most recent); the audit trail keeps them all.
FORMER_MEMBERS_KEPT = 200


def with_former(sub: Subscription, leaving: tuple[Member, ...]) -> tuple[Member, ...]:
    """The subscription's former members with `leaving` added, bounded in number so the
    stored item cannot grow with churn."""
    return (*sub.former_members, *leaving)[-FORMER_MEMBERS_KEPT:]


def changed_values(
    before: Subscription, after: Subscription, *names: str
) -> dict[str, DetailValue]:
    """`previous_<name>` and `<name>` for each named field that differs: an audit event names
    what a change replaced, not only that it changed."""
    details: dict[str, DetailValue] = {}
    for name in names:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            details |= {f"previous_{name}": old, name: new}
    return details


def credit_change(profile_id: str, delta: int) -> CreditChange | None:
    return CreditChange(profile_id, delta) if delta else None


def ensure_cycle(cycle: str) -> None:
    if cycle not in BILLING_CYCLES:
        raise InvalidRequest.for_field("billing_cycle", "Must be month or year.")


def ensure_capacity(
    plan: PlanSnapshot, count: int, field_name: str, *, members_kept: int = 0
) -> None:
    """`count` members fit the plan: its `max_members`, ours, and one Stripe charge for a whole
    period at its dearest price (the subscription may switch to that cycle at any time, and a
    renewal Stripe refuses as too large would fail every retry and cancel the subscription).
    `members_kept`: the members the subscription already has on this plan; a `max_members`
    lowered below them since refuses only growing beyond them (docs/rules/state.md, 6)."""
    if plan.max_members is not None and count > max(plan.max_members, members_kept):
        raise InvalidRequest.for_field(
            field_name, f"Plan {plan.plan_id} allows at most {plan.max_members} members."
        )
    if count > MAX_MEMBERS:
        raise InvalidRequest.for_field(
            field_name, f"A subscription has at most {MAX_MEMBERS} members."
        )
    if plan.prices:
        cycle, price = max(plan.prices.items(), key=lambda item: item[1])
        ensure_within_maximum(
            plan.currency,
            price * count,
            field_name,
            f"A {cycle} of {count} member(s) on plan {plan.plan_id}",
        )
