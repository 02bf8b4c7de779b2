"""The subscription aggregate: the state machine of DESIGN.md section 2. Pure; `now` is passed in.

Public API for the service layer (every method returns a new object; nothing is mutated):

Construction and plain transitions -> `Outcome(subscription, event, credit_change)`:
- `Subscription.create(subscription_id=, community_id=, plan=, owner=, member_ids=,
  billing_cycle=, payment_method_id=, waive_activation_fee=, now=)`            -> inactive
- `sub.update(SubscriptionUpdate(...), now)`        PATCH, all-or-nothing (inactive / active)
- `sub.ensure_deletable(now) -> AuditEvent`          DELETE (inactive only)
- `sub.cancel("period_end" | "now", now)`, `sub.resume(now)`
- `sub.expire(now)`, `sub.end_grace(now)`            scheduler actions (see `next_action`)
- `sub.remove_member(profile_id, "period_end" | "now", now)`, `sub.restore_member(profile_id, now)`
- `sub.change_plan_at_period_end(plan, now)`         queues pending_changes.plan

Charging (two-phase, DESIGN.md section 6) -> `ChargePlan` (see charges.py):
- `sub.plan_activation(now, owner_credit=, payment_method_id=None, current_plan=None)`
- `sub.plan_renewal(now, owner_credit=)`  (`preview_renewal` for GET .../preview: not due-checked)
- `sub.plan_retry(now, owner_credit=)`
- `sub.plan_reactivation(now, owner_credit=, owner=None, payment_method_id=None,
  billing_cycle=None, member_ids=None)`
- `sub.plan_add_members(additions, now, owner_credit=)`
- `sub.plan_change_now(plan, now, owner_credit=)`  (cheaper plan: subtotal 0, credit_granted > 0)
`owner_credit` is the credit balance of the profile the charge bills
(`ChargePlan.billed_to_profile_id`: the owner after the change), in the subscription's currency.
Then, with the ChargePlan `charge`:
- `charge.needs_stripe` (total > 0):
    1. `sub.begin_charge(charge, payment_id, now)` + `payments.new_payment(...)` in one transaction
       (Outcome.credit_change reserves the credit: add its delta to that profile's balance);
    2. Stripe; 3. `sub.apply_charge_succeeded(payment_id, now)` or
       `sub.apply_charge_failed(payment_id, now)` with the payment's own transition.
- otherwise: `sub.settle_without_stripe(charge, now, payment_id=...)` in one transaction (pass a
  payment id and write a succeeded payment when `charge.needs_payment`, i.e. credit paid it all).
While a charge is pending the subscription takes no other change (Conflict) and has no
`next_action`; resolution needs only the stored subscription and the payment id.

`next_action -> ScheduledAction(action, due_at) | None` tells the scheduler what is due when:
"renew" (active, period end), "expire" (expiring, cancel_at), "retry" / "end_grace"
(failed_payment).
`version` is the stored version this object was read at: the domain never changes it; the
repository writes `version + 1` conditioned on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from chalicelib.domain.charges import ChargePlan, PendingCharge, PlanSnapshot, with_credit
from chalicelib.domain.errors import ConcurrentChange, Conflict, InvalidRequest, NotFound
from chalicelib.domain.events import Actor, AuditEvent, DetailValue
from chalicelib.domain.members import (
    ActivationFee,
    Member,
    MemberAddition,
    RemovalTiming,
    ensure_unique_ids,
)
from chalicelib.domain.money import prorated_amount
from chalicelib.domain.payments import PaymentKind, PaymentLine, charge_key
from chalicelib.domain.periods import (
    Period,
    ensure_utc,
    period_bounds,
    seconds_in_period,
    seconds_left,
)
from chalicelib.domain.plans import BILLING_CYCLES, BillingCycle, Plan
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


def plan_snapshot(plan: Plan) -> PlanSnapshot:
    return PlanSnapshot(
        plan_id=plan.id,
        name=plan.name,
        currency=plan.currency,
        prices=dict(plan.prices),
        activation_fee=plan.activation_fee,
        failed_payment_grace_days=plan.failed_payment_grace_days,
        retry_schedule_days=tuple(plan.retry_schedule_days),
        max_members=plan.max_members,
    )


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
class SubscriptionUpdate:
    """PATCH /subscriptions/{id}. None means "not given"."""

    plan: Plan | None = None
    owner: Profile | None = None
    member_ids: Sequence[str] | None = None
    billing_cycle: BillingCycle | None = None
    payment_method_id: str | None = None
    waive_activation_fee: bool | None = None


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
        _ensure_cycle(billing_cycle)
        plan.unit_amount(billing_cycle)
        owner.ensure_customer("owner_id")
        snapshot = plan_snapshot(plan)
        ensure_unique_ids(member_ids, "member_ids")
        _ensure_capacity(snapshot, len(member_ids), "member_ids")
        members = tuple(
            Member(pid, now, _initial_fee(snapshot, waive_activation_fee)) for pid in member_ids
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
        event = _event(
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

    # ------------------------------------------------------------ edits

    def update(self, changes: SubscriptionUpdate, now: datetime, actor: Actor = "api") -> Outcome:
        """PATCH. inactive: anything; active: owner, payment method, billing cycle (queued)."""
        ensure_utc(now)
        self._ensure_no_pending_charge()
        if self.status == "inactive":
            updated, changed = self._update_inactive(changes, now)
        elif self.status == "active":
            updated, changed = self._update_active(changes)
        else:
            raise Conflict(f"A {self.status} subscription takes no changes.")
        event = _event(
            now, "subscription.updated", self.status, self.status, actor, changed=changed
        )
        return Outcome(updated, event)

    def _update_inactive(
        self, changes: SubscriptionUpdate, now: datetime
    ) -> tuple[Subscription, list[str]]:
        changed: list[str] = []
        snapshot = self.plan
        if changes.plan is not None:
            changes.plan.ensure_open_for_new_subscriptions()
            snapshot = plan_snapshot(changes.plan)
            changed.append("plan_id")
        cycle = self.billing_cycle
        if changes.billing_cycle is not None:
            _ensure_cycle(changes.billing_cycle)
            cycle = changes.billing_cycle
            changed.append("billing_cycle")
        if not snapshot.offers(cycle):
            field_name = "billing_cycle" if changes.billing_cycle is not None else "plan_id"
            raise InvalidRequest.for_field(
                field_name, f"Plan {snapshot.plan_id} has no {cycle} price."
            )
        owner_id = self.owner_id
        if changes.owner is not None:
            changes.owner.ensure_customer("owner_id")
            owner_id = changes.owner.id
            changed.append("owner_id")
        waive = self.waive_activation_fee
        if changes.waive_activation_fee is not None:
            waive = changes.waive_activation_fee
            changed.append("waive_activation_fee")
        ids = self.member_ids
        if changes.member_ids is not None:
            ensure_unique_ids(changes.member_ids, "member_ids")
            ids = list(changes.member_ids)
            changed.append("member_ids")
        _ensure_capacity(snapshot, len(ids), "member_ids" if changes.member_ids else "plan_id")
        existing = {m.profile_id: m for m in self.members}
        members = tuple(
            replace(existing[pid], activation_fee=_initial_fee(snapshot, waive))
            if pid in existing
            else Member(pid, now, _initial_fee(snapshot, waive))
            for pid in ids
        )
        payment_method_id = self.payment_method_id
        if changes.payment_method_id is not None:
            payment_method_id = changes.payment_method_id
            changed.append("payment_method_id")
        updated = replace(
            self,
            plan=snapshot,
            billing_cycle=cycle,
            owner_id=owner_id,
            waive_activation_fee=waive,
            members=members,
            payment_method_id=payment_method_id,
        )
        return updated, changed

    def _update_active(self, changes: SubscriptionUpdate) -> tuple[Subscription, list[str]]:
        for name, value in (
            ("plan_id", changes.plan),
            ("member_ids", changes.member_ids),
            ("waive_activation_fee", changes.waive_activation_fee),
        ):
            if value is not None:
                raise Conflict(
                    f"{name} cannot change on an active subscription "
                    "(use change-plan or the members endpoints)."
                )
        changed: list[str] = []
        updated = self
        if changes.owner is not None:
            changes.owner.ensure_customer("owner_id")
            updated = replace(updated, owner_id=changes.owner.id)
            changed.append("owner_id")
        if changes.payment_method_id is not None:
            updated = replace(updated, payment_method_id=changes.payment_method_id)
            changed.append("payment_method_id")
        if changes.billing_cycle is not None:
            cycle = changes.billing_cycle
            _ensure_cycle(cycle)
            target_plan = self.pending_changes.plan or self.plan
            if not target_plan.offers(cycle):
                raise InvalidRequest.for_field(
                    "billing_cycle", f"Plan {target_plan.plan_id} has no {cycle} price."
                )
            queued = None if cycle == self.billing_cycle else cycle
            updated = replace(
                updated, pending_changes=replace(updated.pending_changes, billing_cycle=queued)
            )
            changed.append("billing_cycle")
        return updated, changed

    def ensure_deletable(self, now: datetime, actor: Actor = "api") -> AuditEvent:
        if self.status != "inactive":
            raise Conflict(f"Only inactive subscriptions are deleted; this one is {self.status}.")
        self._ensure_no_pending_charge()
        return _event(now, "subscription.deleted", "inactive", None, actor)

    # ------------------------------------------------------------ lifecycle

    def cancel(self, at: CancelTiming, now: datetime, actor: Actor = "api") -> Outcome:
        ensure_utc(now)
        self._ensure_no_pending_charge()
        if at not in ("period_end", "now"):
            raise InvalidRequest.for_field("at", "Must be period_end or now.")
        if self.status == "inactive":
            raise Conflict("An inactive subscription is deleted, not cancelled.")
        if self.status == "cancelled":
            raise Conflict("The subscription is already cancelled.")
        if at == "period_end":
            if self.status != "active":
                raise Conflict(f"A {self.status} subscription cannot be cancelled at period end.")
            period = self._period()
            updated = replace(
                self, status="expiring", cancel_at=period.end, pending_changes=NO_CHANGES
            )
            event = _event(
                now,
                "subscription.cancel_scheduled",
                self.status,
                "expiring",
                actor,
                cancel_at=period.end.isoformat(),
            )
            return Outcome(updated, event)
        return self._cancelled(now, "requested", actor)

    def resume(self, now: datetime, actor: Actor = "api") -> Outcome:
        ensure_utc(now)
        if self.status != "expiring":
            raise Conflict(f"Only expiring subscriptions resume; this one is {self.status}.")
        self._ensure_no_pending_charge()
        updated = replace(self, status="active", cancel_at=None)
        return Outcome(updated, _event(now, "subscription.resumed", "expiring", "active", actor))

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
        self._ensure_no_pending_charge()
        if now < self.grace_ends_at:
            raise Conflict("The grace period has not ended yet.")
        return self._cancelled(now, "payment_failed", actor)

    def _cancelled(self, now: datetime, reason: CancellationReason, actor: Actor) -> Outcome:
        updated = replace(
            self,
            status="cancelled",
            cancelled_at=now,
            cancellation_reason=reason,
            next_retry_at=None,
            pending_changes=NO_CHANGES,
        )
        event_type = "subscription.expired" if reason == "expired" else "subscription.cancelled"
        event = _event(now, event_type, self.status, "cancelled", actor, reason=reason)
        return Outcome(updated, event)

    # ------------------------------------------------------------ members

    def remove_member(
        self, profile_id: str, at: RemovalTiming, now: datetime, actor: Actor = "api"
    ) -> Outcome:
        ensure_utc(now)
        self._ensure_status("active", "members are removed")
        self._ensure_no_pending_charge()
        if at not in ("period_end", "now"):
            raise InvalidRequest.for_field("at", "Must be period_end or now.")
        member = self.member(profile_id)
        if member is None:
            raise NotFound(f"Profile {profile_id} is not a member of subscription {self.id}.")
        staying = [m for m in self.staying_members() if m.profile_id != profile_id]
        if not staying:
            raise Conflict("That would leave the subscription without members; cancel it instead.")
        if at == "period_end":
            if member.removal_pending:
                raise Conflict(f"Profile {profile_id} is already leaving at period end.")
            end = self._period().end
            members = tuple(
                replace(m, removal_effective_at=end) if m.profile_id == profile_id else m
                for m in self.members
            )
            event = _event(
                now,
                "member.removal_scheduled",
                "active",
                "active",
                actor,
                profile_id=profile_id,
                effective_at=end.isoformat(),
            )
            return Outcome(replace(self, members=members), event)
        members = tuple(m for m in self.members if m.profile_id != profile_id)
        former = (*self.former_members, replace(member, removed_at=now))
        event = _event(now, "member.removed", "active", "active", actor, profile_id=profile_id)
        return Outcome(replace(self, members=members, former_members=former), event)

    def restore_member(self, profile_id: str, now: datetime, actor: Actor = "api") -> Outcome:
        ensure_utc(now)
        self._ensure_status("active", "members are restored")
        self._ensure_no_pending_charge()
        member = self.member(profile_id)
        if member is None:
            raise NotFound(f"Profile {profile_id} is not a member of subscription {self.id}.")
        if not member.removal_pending:
            raise Conflict(f"Profile {profile_id} has no pending removal.")
        if self.pending_changes.plan is not None:
            queued = self.pending_changes.plan
            if queued.max_members is not None and len(self.staying_members()) >= queued.max_members:
                raise Conflict(
                    f"The queued plan {queued.plan_id} allows at most {queued.max_members} members."
                )
        members = tuple(
            replace(m, removal_effective_at=None) if m.profile_id == profile_id else m
            for m in self.members
        )
        event = _event(now, "member.restored", "active", "active", actor, profile_id=profile_id)
        return Outcome(replace(self, members=members), event)

    # ------------------------------------------------------------ plan changes

    def change_plan_at_period_end(self, plan: Plan, now: datetime, actor: Actor = "api") -> Outcome:
        """Queue a plan change for the renewal; the current plan clears a queued change."""
        ensure_utc(now)
        self._ensure_status("active", "plans change")
        self._ensure_no_pending_charge()
        cycle = self.pending_changes.billing_cycle or self.billing_cycle
        if plan.id == self.plan_id:
            queued = None
        else:
            snapshot = self._check_new_plan(plan, cycle, len(self.staying_members()))
            queued = snapshot
        updated = replace(self, pending_changes=replace(self.pending_changes, plan=queued))
        event = _event(
            now,
            "subscription.plan_change_scheduled",
            "active",
            "active",
            actor,
            plan_id=plan.id,
            cleared=queued is None,
        )
        return Outcome(updated, event)

    def _check_new_plan(self, plan: Plan, cycle: BillingCycle, member_count: int) -> PlanSnapshot:
        plan.ensure_open_for_new_subscriptions()
        if plan.currency != self.currency:
            raise InvalidRequest.for_field(
                "plan_id", f"Plan {plan.id} is in {plan.currency}, not {self.currency}."
            )
        if cycle not in plan.prices:
            raise InvalidRequest.for_field("plan_id", f"Plan {plan.id} has no {cycle} price.")
        snapshot = plan_snapshot(plan)
        _ensure_capacity(snapshot, member_count, "plan_id")
        return snapshot

    def refresh_plan_terms(self, plan: Plan) -> Subscription:
        """Pick up a PATCHed plan's name, grace days, retry schedule and max members."""
        if plan.id != self.plan_id:
            raise ValueError("refresh_plan_terms takes the subscription's own plan")
        return replace(self, plan=plan_snapshot(plan))

    # ------------------------------------------------------------ charge planning

    def plan_activation(
        self,
        now: datetime,
        *,
        owner_credit: int,
        payment_method_id: str | None = None,
        current_plan: Plan | None = None,
    ) -> ChargePlan:
        """inactive -> active: first period, unit price x members + due activation fees.
        Pass `current_plan` (the stored plan) to refuse an archived plan (409) and use its
        latest terms."""
        ensure_utc(now)
        self._ensure_status("inactive", "subscriptions are activated")
        self._ensure_no_pending_charge()
        if current_plan is not None:
            current_plan.ensure_open_for_new_subscriptions()
            return self.refresh_plan_terms(current_plan).plan_activation(
                now, owner_credit=owner_credit, payment_method_id=payment_method_id
            )
        if not self.members:
            raise InvalidRequest.for_field("member_ids", "Add at least one member first.")
        method = payment_method_id or self.payment_method_id
        if not method:
            raise InvalidRequest.for_field(
                "payment_method_id", "A payment method is needed, also for free plans."
            )
        members = tuple(replace(m, activation_fee=self._fee_for(m)) for m in self.members)
        lines = [_plan_line(self.plan, self.billing_cycle, len(members))]
        lines += _fee_lines(self.plan, members)
        anchor = _whole_seconds(now)
        return self._charge_plan(
            "activation",
            lines,
            owner_credit,
            now,
            plan=self.plan,
            cycle=self.billing_cycle,
            owner_id=self.owner_id,
            payment_method_id=method,
            members=members,
            anchor=anchor,
            index=1,
            pending_changes=self.pending_changes,
        )

    def plan_renewal(self, now: datetime, *, owner_credit: int) -> ChargePlan:
        """active, period ended -> next period on the (possibly queued) plan and cycle, billing
        the members without a pending removal."""
        ensure_utc(now)
        period = self._period() if self.status == "active" else None
        if period is not None and now < period.end:
            raise Conflict(f"Subscription {self.id} is not due for renewal before {period.end}.")
        return self.preview_renewal(now, owner_credit=owner_credit)

    def preview_renewal(self, now: datetime, *, owner_credit: int) -> ChargePlan:
        """What the next renewal will charge (GET .../preview?action=renew); not due-checked."""
        ensure_utc(now)
        self._ensure_status("active", "subscriptions renew")
        self._ensure_no_pending_charge()
        period = self._period()
        plan = self.pending_changes.plan or self.plan
        cycle = self.pending_changes.billing_cycle or self.billing_cycle
        anchor = self._anchor()
        index = self.period_index + 1
        if cycle != self.billing_cycle:
            anchor, index = period.end, 1
        members = self.staying_members()
        return self._charge_plan(
            "renewal",
            [_plan_line(plan, cycle, len(members))],
            owner_credit,
            now,
            plan=plan,
            cycle=cycle,
            owner_id=self.owner_id,
            payment_method_id=self._payment_method(),
            members=members,
            anchor=anchor,
            index=index,
            pending_changes=NO_CHANGES,
        )

    def plan_retry(self, now: datetime, *, owner_credit: int) -> ChargePlan:
        """failed_payment, retry due -> full period; a new billing cycle starts now."""
        ensure_utc(now)
        self._ensure_status("failed_payment", "payments are retried")
        self._ensure_no_pending_charge()
        if self.next_retry_at is None:
            raise Conflict("No retry is scheduled for this subscription.")
        if now < self.next_retry_at:
            raise Conflict(f"The next retry is not due before {self.next_retry_at}.")
        if self.grace_ends_at is not None and now >= self.grace_ends_at:
            raise Conflict("The grace period has ended; the subscription is cancelled instead.")
        plan = self.pending_changes.plan or self.plan
        cycle = self.pending_changes.billing_cycle or self.billing_cycle
        return self._charge_plan(
            "retry",
            [_plan_line(plan, cycle, len(self.members))],
            owner_credit,
            now,
            plan=plan,
            cycle=cycle,
            owner_id=self.owner_id,
            payment_method_id=self._payment_method(),
            members=self.members,
            anchor=_whole_seconds(now),
            index=1,
            pending_changes=NO_CHANGES,
        )

    def plan_reactivation(
        self,
        now: datetime,
        *,
        owner_credit: int,
        owner: Profile | None = None,
        payment_method_id: str | None = None,
        billing_cycle: BillingCycle | None = None,
        member_ids: Sequence[str] | None = None,
    ) -> ChargePlan:
        """failed_payment -> active: full period now, new cycle starts now. Existing members
        pay no activation fee again; new ones do unless waive_activation_fee. The changes
        apply only if the charge succeeds."""
        ensure_utc(now)
        self._ensure_status("failed_payment", "subscriptions are reactivated")
        self._ensure_no_pending_charge()
        plan = self.pending_changes.plan or self.plan
        cycle = billing_cycle or self.pending_changes.billing_cycle or self.billing_cycle
        _ensure_cycle(cycle)
        if not plan.offers(cycle):
            raise InvalidRequest.for_field(
                "billing_cycle", f"Plan {plan.plan_id} has no {cycle} price."
            )
        owner_id = self.owner_id
        if owner is not None:
            owner.ensure_customer("owner_id")
            owner_id = owner.id
        members = self.members
        if member_ids is not None:
            ensure_unique_ids(member_ids, "member_ids")
            if not member_ids:
                raise InvalidRequest.for_field("member_ids", "Keep at least one member.")
            existing = {m.profile_id: m for m in self.members}
            members = tuple(
                existing.get(pid) or Member(pid, now, _initial_fee(plan, self.waive_activation_fee))
                for pid in member_ids
            )
        _ensure_capacity(plan, len(members), "member_ids")
        lines = [_plan_line(plan, cycle, len(members)), *_fee_lines(plan, members)]
        return self._charge_plan(
            "reactivation",
            lines,
            owner_credit,
            now,
            plan=plan,
            cycle=cycle,
            owner_id=owner_id,
            payment_method_id=payment_method_id or self._payment_method(),
            members=members,
            anchor=_whole_seconds(now),
            index=1,
            pending_changes=NO_CHANGES,
        )

    def plan_add_members(
        self, additions: Sequence[MemberAddition], now: datetime, *, owner_credit: int
    ) -> ChargePlan:
        """active: add members now; each pays the prorated unit price for the rest of the
        period plus the activation fee unless waived. Nobody is added if the charge fails."""
        ensure_utc(now)
        self._ensure_status("active", "members are added")
        self._ensure_no_pending_charge()
        if not additions:
            raise InvalidRequest.for_field("members", "Give at least one member to add.")
        ensure_unique_ids([a.profile_id for a in additions], "members")
        for index, addition in enumerate(additions):
            if self.member(addition.profile_id) is not None:
                raise InvalidRequest.for_field(
                    f"members[{index}].profile_id",
                    f"Profile {addition.profile_id} is already a member.",
                )
            if addition.activation_fee not in ("charge", "waive"):
                raise InvalidRequest.for_field(
                    f"members[{index}].activation_fee", "Must be charge or waive."
                )
        _ensure_capacity(self.plan, len(self.members) + len(additions), "members")
        if self.pending_changes.plan is not None:  # the queued plan must fit them too
            staying = len(self.staying_members()) + len(additions)
            _ensure_capacity(self.pending_changes.plan, staying, "members")
        period = self._period()
        left, total_seconds = seconds_left(period, now), seconds_in_period(period)
        unit = prorated_amount(self.unit_amount, left, total_seconds)
        new_members = tuple(
            Member(
                a.profile_id,
                now,
                ActivationFee.due(self.plan.activation_fee)
                if a.activation_fee == "charge"
                else ActivationFee.waived(),
            )
            for a in additions
        )
        lines: list[PaymentLine] = []
        for member in new_members:
            lines.append(
                PaymentLine(
                    kind="proration",
                    description=f"{self.plan.name}: rest of the current period",
                    plan_name=self.plan.name,
                    profile_id=member.profile_id,
                    unit_amount=unit,
                    quantity=1,
                    amount=unit,
                )
            )
            lines += _fee_lines(self.plan, (member,))
        return self._charge_plan(
            "proration",
            lines,
            owner_credit,
            now,
            plan=self.plan,
            cycle=self.billing_cycle,
            owner_id=self.owner_id,
            payment_method_id=self._payment_method(),
            members=(*self.members, *new_members),
            anchor=self._anchor(),
            index=self.period_index,
            pending_changes=self.pending_changes,
        )

    def plan_change_now(self, plan: Plan, now: datetime, *, owner_credit: int) -> ChargePlan:
        """active: switch plans now. Dearer: the prorated difference per member is charged.
        Cheaper: nothing is charged (subtotal 0) and `credit_granted` goes to the owner."""
        ensure_utc(now)
        self._ensure_status("active", "plans change")
        self._ensure_no_pending_charge()
        if plan.id == self.plan_id:
            raise InvalidRequest.for_field("plan_id", "The subscription is already on this plan.")
        snapshot = self._check_new_plan(plan, self.billing_cycle, len(self.members))
        period = self._period()
        left, total_seconds = seconds_left(period, now), seconds_in_period(period)
        old_unit = prorated_amount(self.unit_amount, left, total_seconds)
        new_unit = prorated_amount(snapshot.unit_amount(self.billing_cycle), left, total_seconds)
        count = len(self.members)
        difference = new_unit - old_unit
        lines: list[PaymentLine] = []
        if difference > 0:
            lines.append(
                PaymentLine(
                    kind="proration",
                    description=f"Change from {self.plan.name} to {snapshot.name}, rest of period",
                    plan_name=snapshot.name,
                    profile_id=None,
                    unit_amount=difference,
                    quantity=count,
                    amount=difference * count,
                )
            )
        pending = self.pending_changes
        if pending.billing_cycle is not None and not snapshot.offers(pending.billing_cycle):
            pending = NO_CHANGES
        return self._charge_plan(
            "plan_change",
            lines,
            owner_credit,
            now,
            plan=snapshot,
            cycle=self.billing_cycle,
            owner_id=self.owner_id,
            payment_method_id=self._payment_method(),
            members=self.members,
            anchor=self._anchor(),
            index=self.period_index,
            pending_changes=replace(pending, plan=None),
            credit_granted=max(0, -difference) * count,
        )

    def _charge_plan(
        self,
        kind: PaymentKind,
        lines: list[PaymentLine],
        owner_credit: int,
        now: datetime,
        *,
        plan: PlanSnapshot,
        cycle: BillingCycle,
        owner_id: str,
        payment_method_id: str,
        members: tuple[Member, ...],
        anchor: datetime,
        index: int,
        pending_changes: PendingChanges,
        credit_granted: int = 0,
    ) -> ChargePlan:
        if owner_credit < 0:
            raise ValueError("a credit balance is never negative")
        all_lines, subtotal, credit, total = with_credit(lines, owner_credit)
        period = period_bounds(anchor, cycle, index)
        # Keyed by state, not by `now`: two workers planning from one state get one key.
        current = self.current_period
        key_start = period.start if kind == "renewal" else (current.start if current else None)
        key = charge_key(self.id, kind, key_start, self.version)
        pending = PendingCharge(
            kind=kind,
            payment_id=None,
            charge_key=key,
            started_at=now,
            credit_applied=credit,
            credit_granted=credit_granted,
            billed_to_profile_id=owner_id,
            plan=plan,
            billing_cycle=cycle,
            owner_id=owner_id,
            payment_method_id=payment_method_id,
            members=members,
            period=period,
            period_anchor=anchor,
            period_index=index,
            pending_changes_plan=pending_changes.plan,
            pending_changes_billing_cycle=pending_changes.billing_cycle,
        )
        return ChargePlan(
            subscription_id=self.id,
            community_id=self.community_id,
            kind=kind,
            currency=self.currency,
            lines=all_lines,
            subtotal=subtotal,
            credit_applied=credit,
            total=total,
            period=period,
            billed_to_profile_id=owner_id,
            payment_method_id=payment_method_id,
            charge_key=key,
            base_version=self.version,
            credit_granted=credit_granted,
            pending=pending,
        )

    # ------------------------------------------------------------ charge resolution

    def begin_charge(
        self, charge: ChargePlan, payment_id: str, now: datetime, actor: Actor = "api"
    ) -> Outcome:
        """Phase 1: store the pending charge (written with the pending payment). Reserves the
        credit applied (credit_change)."""
        ensure_utc(now)
        self._ensure_plan_is_current(charge)
        if not charge.needs_stripe:
            raise ValueError("nothing to charge through Stripe: use settle_without_stripe")
        pending = replace(charge.pending, payment_id=payment_id, started_at=now)
        updated = replace(self, pending_charge=pending)
        event = _event(
            now,
            "payment.started",
            self.status,
            self.status,
            actor,
            payment_id=payment_id,
            kind=charge.kind,
            total=charge.total,
        )
        return Outcome(updated, event, _credit(charge.billed_to_profile_id, -charge.credit_applied))

    def apply_charge_succeeded(
        self, payment_id: str, now: datetime, actor: Actor = "api"
    ) -> Outcome:
        """Phase 3, success: the subscription takes the values the charge paid for."""
        ensure_utc(now)
        pending = self._pending_for(payment_id)
        updated, event = self._succeed(pending, payment_id, now, actor)
        return Outcome(updated, event, _credit(pending.owner_id, pending.credit_granted))

    def apply_charge_failed(self, payment_id: str, now: datetime, actor: Actor = "api") -> Outcome:
        """Phase 3, failure: changes are discarded, the reserved credit returns; a failed
        renewal starts the failed-payment flow, a failed retry schedules the next retry."""
        ensure_utc(now)
        pending = self._pending_for(payment_id)
        cleared = replace(self, pending_charge=None)
        refund_credit = _credit(pending.billed_to_profile_id, pending.credit_applied)
        details: dict[str, DetailValue] = {"payment_id": payment_id, "kind": pending.kind}
        if pending.kind == "renewal":
            grace = timedelta(days=self.plan.failed_payment_grace_days)
            staying = {m.profile_id for m in pending.members}
            leaving = [m for m in self.members if m.profile_id not in staying]
            failed = replace(
                cleared,
                status="failed_payment",
                members=pending.members,
                former_members=(*self.former_members, *_removed(leaving, pending.period.start)),
                failed_at=now,
                grace_ends_at=now + grace,
                retry_count=0,
                next_retry_at=_retry_at(self.plan, now, 0, now),
            )
            event = AuditEvent(
                now, "subscription.renewal_failed", "active", "failed_payment", actor, details
            )
            return Outcome(failed, event, refund_credit)
        if pending.kind == "retry":
            attempts = self.retry_count + 1
            failed_at = self.failed_at or now
            retried = replace(
                cleared,
                retry_count=attempts,
                next_retry_at=_retry_at(self.plan, failed_at, attempts, now),
            )
            event = AuditEvent(
                now, "subscription.retry_failed", self.status, self.status, actor, details
            )
            return Outcome(retried, event, refund_credit)
        event = AuditEvent(
            now, f"subscription.{pending.kind}_failed", self.status, self.status, actor, details
        )
        return Outcome(cleared, event, refund_credit)

    def settle_without_stripe(
        self,
        charge: ChargePlan,
        now: datetime,
        *,
        payment_id: str | None = None,
        actor: Actor = "api",
    ) -> Outcome:
        """Apply a charge that needs no Stripe call (total 0: free plan, cheaper plan, or credit
        paid it all) in one step. `payment_id` is required when `charge.needs_payment`."""
        ensure_utc(now)
        self._ensure_plan_is_current(charge)
        if charge.needs_stripe:
            raise ValueError("this charge needs Stripe: use begin_charge")
        if charge.needs_payment and payment_id is None:
            raise ValueError("a payment record is needed when credit paid the charge")
        pending = replace(charge.pending, payment_id=payment_id, started_at=now)
        updated, event = self._succeed(pending, payment_id, now, actor)
        delta = pending.credit_granted - pending.credit_applied
        return Outcome(updated, event, _credit(pending.owner_id, delta))

    def _succeed(
        self, pending: PendingCharge, payment_id: str | None, now: datetime, actor: Actor
    ) -> tuple[Subscription, AuditEvent]:
        staying = {m.profile_id for m in pending.members}
        leaving = [m for m in self.members if m.profile_id not in staying]
        removed_at = pending.period.start if pending.kind == "renewal" else now
        updated = replace(
            self,
            status="active",
            plan=pending.plan,
            billing_cycle=pending.billing_cycle,
            owner_id=pending.owner_id,
            payment_method_id=pending.payment_method_id,
            members=tuple(m.fee_paid_by(payment_id) for m in pending.members),
            former_members=(*self.former_members, *_removed(leaving, removed_at)),
            period_anchor=pending.period_anchor,
            period_index=pending.period_index,
            pending_changes=PendingChanges(
                pending.pending_changes_billing_cycle, pending.pending_changes_plan
            ),
            pending_charge=None,
            failed_at=None,
            grace_ends_at=None,
            next_retry_at=None,
            retry_count=0,
            activated_at=self.activated_at or now,
        )
        event_type = {
            "activation": "subscription.activated",
            "renewal": "subscription.renewed",
            "retry": "subscription.retry_succeeded",
            "reactivation": "subscription.reactivated",
            "proration": "member.added",
            "plan_change": "subscription.plan_changed",
        }[pending.kind]
        details: dict[str, DetailValue] = {
            "payment_id": payment_id,
            "kind": pending.kind,
            "period_start": pending.period.start.isoformat(),
            "period_end": pending.period.end.isoformat(),
        }
        if pending.kind == "proration":
            details["member_ids"] = sorted(pid for pid in staying if self.member(pid) is None)
        if pending.kind == "plan_change":
            details["plan_id"] = pending.plan.plan_id
            details["credit_granted"] = pending.credit_granted
        return updated, AuditEvent(now, event_type, self.status, "active", actor, details)

    # ------------------------------------------------------------ guards

    def _ensure_status(self, status: SubscriptionStatus, what: str) -> None:
        if self.status != status:
            raise Conflict(f"Only {status} subscriptions: {what}; this one is {self.status}.")

    def _ensure_no_pending_charge(self) -> None:
        if self.pending_charge is not None:
            raise Conflict(
                f"Payment {self.pending_charge.payment_id} is in progress; try again shortly."
            )

    def _ensure_plan_is_current(self, charge: ChargePlan) -> None:
        if charge.subscription_id != self.id:
            raise ValueError("the charge plan belongs to another subscription")
        self._ensure_no_pending_charge()
        if charge.base_version != self.version:
            raise ConcurrentChange("The subscription changed since the charge was planned.")

    def _pending_for(self, payment_id: str) -> PendingCharge:
        pending = self.pending_charge
        if pending is None or pending.payment_id != payment_id:
            raise Conflict(f"Payment {payment_id} is not in progress on subscription {self.id}.")
        return pending

    def _period(self) -> Period:
        period = self.current_period
        if period is None:
            raise Conflict("The subscription has no current period.")
        return period

    def _anchor(self) -> datetime:
        if self.period_anchor is None:
            raise Conflict("The subscription has no current period.")
        return self.period_anchor

    def _payment_method(self) -> str:
        if not self.payment_method_id:
            raise InvalidRequest.for_field("payment_method_id", "A payment method is needed.")
        return self.payment_method_id

    def _fee_for(self, member: Member) -> ActivationFee:
        if member.activation_fee.status in ("paid", "waived"):
            return member.activation_fee
        return _initial_fee(self.plan, self.waive_activation_fee)


# ---------------------------------------------------------------- helpers


def _event(
    now: datetime,
    event_type: str,
    from_status: str | None,
    to_status: str | None,
    actor: Actor,
    **details: DetailValue,
) -> AuditEvent:
    return AuditEvent(now, event_type, from_status, to_status, actor, details)


def _credit(profile_id: str, delta: int) -> CreditChange | None:
    return CreditChange(profile_id, delta) if delta else None


def _ensure_cycle(cycle: str) -> None:
    if cycle not in BILLING_CYCLES:
        raise InvalidRequest.for_field("billing_cycle", "Must be month or year.")


def _ensure_capacity(plan: PlanSnapshot, count: int, field_name: str) -> None:
    if plan.max_members is not None and count > plan.max_members:
        raise InvalidRequest.for_field(
            field_name, f"Plan {plan.plan_id} allows at most {plan.max_members} members."
        )


def _initial_fee(plan: PlanSnapshot, waive: bool) -> ActivationFee:
    return ActivationFee.waived() if waive else ActivationFee.due(plan.activation_fee)


def _plan_line(plan: PlanSnapshot, cycle: BillingCycle, quantity: int) -> PaymentLine:
    unit = plan.unit_amount(cycle)
    return PaymentLine(
        kind="plan",
        description=f"{plan.name} ({cycle}ly), {quantity} member{'s' if quantity != 1 else ''}",
        plan_name=plan.name,
        profile_id=None,
        unit_amount=unit,
        quantity=quantity,
        amount=unit * quantity,
    )


def _fee_lines(plan: PlanSnapshot, members: Sequence[Member]) -> list[PaymentLine]:
    return [
        PaymentLine(
            kind="activation_fee",
            description=f"{plan.name}: activation fee",
            plan_name=plan.name,
            profile_id=m.profile_id,
            unit_amount=m.activation_fee.amount,
            quantity=1,
            amount=m.activation_fee.amount,
        )
        for m in members
        if m.activation_fee.status == "due" and m.activation_fee.amount > 0
    ]


def _removed(members: Sequence[Member], at: datetime) -> tuple[Member, ...]:
    return tuple(replace(m, removed_at=at) for m in members)


def _retry_at(
    plan: PlanSnapshot, failed_at: datetime, attempts_done: int, now: datetime
) -> datetime | None:
    """The next scheduled retry after `attempts_done` attempts, skipping any already past."""
    for day in plan.retry_schedule_days[attempts_done:]:
        moment = failed_at + timedelta(days=day)
        if moment > now:
            return moment
    return None


def _whole_seconds(now: datetime) -> datetime:
    return now.replace(microsecond=0)
