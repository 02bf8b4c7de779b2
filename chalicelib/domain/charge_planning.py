"""Charge planning: what each charging operation on a subscription would charge.

Every function checks the subscription can take the operation and returns a `ChargePlan` (see
charges.py) holding the lines, the totals and the pending charge to store meanwhile; nothing
changes until `charge_outcomes` applies it:
- `plan_activation(sub, now, owner_credit=, payment_method_id=None, current_plan=None)`
- `plan_renewal(sub, now, owner_credit=, current_plans=None)` (the stored plans' latest terms;
  `preview_renewal` for GET .../preview: not due-checked)
- `plan_retry(sub, now, owner_credit=)`
- `plan_reactivation(sub, now, owner_credit=, owner=None, payment_method_id=None,
  billing_cycle=None, member_ids=None)`
- `plan_add_members(sub, additions, now, owner_credit=)`
- `plan_change_now(sub, plan, now, owner_credit=)` (cheaper plan: subtotal 0, credit_granted > 0)
`owner_credit` is the credit balance of the profile the charge bills
(`ChargePlan.billed_to_profile_id`: the owner after the change), in the subscription's currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from chalicelib.domain.billing.charges import ChargePlan, PendingCharge, PlanSnapshot, plan_snapshot
from chalicelib.domain.billing.lines import (
    CarriedAmount,
    PaymentKind,
    PaymentLine,
    carried_line,
    charge_key,
)
from chalicelib.domain.billing.pricing import (
    added_member_line,
    fee_for,
    fee_lines,
    initial_fee,
    plan_change_line,
    plan_line,
    rest_of_period,
    with_credit,
)
from chalicelib.domain.currencies import ensure_within_maximum
from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.domain.members import Member, MemberAddition, ensure_unique_ids
from chalicelib.domain.periods import ensure_utc, period_bounds
from chalicelib.domain.plans import BillingCycle, Plan
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscription_changes import check_new_plan
from chalicelib.domain.subscriptions import (
    NO_CHANGES,
    PendingChanges,
    Subscription,
    ensure_capacity,
    ensure_cycle,
)


def plan_activation(
    sub: Subscription,
    now: datetime,
    *,
    owner_credit: int,
    payment_method_id: str | None = None,
    current_plan: Plan | None = None,
) -> ChargePlan:
    """inactive -> active: first period, unit price x members + due activation fees.
    Pass `current_plan` (the stored plan) to refuse an archived plan (409) and use its
    latest terms (a `max_members` lowered since the subscription was created: 400)."""
    ensure_utc(now)
    sub.ensure_status("inactive", "subscriptions are activated")
    sub.ensure_no_pending_charge()
    if current_plan is not None:
        current_plan.ensure_open_for_new_subscriptions()
        refreshed = sub.refresh_plan_terms(current_plan)
        ensure_capacity(refreshed.plan, len(refreshed.members), "member_ids")
        return plan_activation(
            refreshed,
            now,
            owner_credit=owner_credit,
            payment_method_id=payment_method_id,
        )
    if not sub.members:
        raise InvalidRequest.for_field("member_ids", "Add at least one member first.")
    method = payment_method_id or sub.payment_method_id
    if not method:
        raise InvalidRequest.for_field(
            "payment_method_id", "A payment method is needed, also for free plans."
        )
    members = tuple(
        replace(m, activation_fee=fee_for(m, sub.plan, sub.waive_activation_fee))
        for m in sub.members
    )
    lines = [plan_line(sub.plan, sub.billing_cycle, len(members))]
    lines += fee_lines(sub.plan, members)
    anchor = _whole_seconds(now)
    return _charge_plan(
        sub,
        "activation",
        lines,
        owner_credit,
        now,
        plan=sub.plan,
        cycle=sub.billing_cycle,
        owner_id=sub.owner_id,
        payment_method_id=method,
        members=members,
        anchor=anchor,
        index=1,
        pending_changes=sub.pending_changes,
    )


def plan_renewal(
    sub: Subscription,
    now: datetime,
    *,
    owner_credit: int,
    current_plans: Mapping[str, Plan] | None = None,
) -> ChargePlan:
    """active, period ended -> next period on the (possibly queued) plan and cycle, billing
    the members without a pending removal. `current_plans` (the stored plans of the
    subscription and of its queued plan change, by id): the renewal charges the plan it
    moves to on its latest terms (name; grace days and retry schedule if it fails)."""
    ensure_utc(now)
    period = sub.require_period() if sub.status == "active" else None
    if period is not None and now < period.end:
        raise Conflict(f"Subscription {sub.id} is not due for renewal before {period.end}.")
    sub = sub.with_latest_plan_terms(current_plans or {})
    charge = preview_renewal(sub, now, owner_credit=owner_credit)
    return replace(charge, pending=replace(charge.pending, failure_terms=sub.plan))


def preview_renewal(sub: Subscription, now: datetime, *, owner_credit: int) -> ChargePlan:
    """What the next renewal will charge (GET .../preview?action=renew); not due-checked."""
    ensure_utc(now)
    sub.ensure_status("active", "subscriptions renew")
    sub.ensure_no_pending_charge()
    period = sub.require_period()
    plan = sub.next_plan
    cycle = sub.pending_changes.billing_cycle or sub.billing_cycle
    anchor = sub.require_anchor()
    index = sub.period_index + 1
    if cycle != sub.billing_cycle:
        anchor, index = period.end, 1
    members = sub.staying_members()
    return _charge_plan(
        sub,
        "renewal",
        [plan_line(plan, cycle, len(members))],
        owner_credit,
        now,
        plan=plan,
        cycle=cycle,
        owner_id=sub.owner_id,
        payment_method_id=sub.require_payment_method(),
        members=members,
        anchor=anchor,
        index=index,
        pending_changes=NO_CHANGES,
    )


def plan_retry(sub: Subscription, now: datetime, *, owner_credit: int) -> ChargePlan:
    """failed_payment, retry due -> full period; a new billing cycle starts now."""
    ensure_utc(now)
    sub.ensure_status("failed_payment", "payments are retried")
    sub.ensure_no_pending_charge()
    if sub.next_retry_at is None:
        raise Conflict("No retry is scheduled for this subscription.")
    if now < sub.next_retry_at:
        raise Conflict(f"The next retry is not due before {sub.next_retry_at}.")
    if sub.grace_ends_at is not None and now >= sub.grace_ends_at:
        raise Conflict("The grace period has ended; the subscription is cancelled instead.")
    plan = sub.next_plan
    cycle = sub.pending_changes.billing_cycle or sub.billing_cycle
    return _charge_plan(
        sub,
        "retry",
        [plan_line(plan, cycle, len(sub.members))],
        owner_credit,
        now,
        plan=plan,
        cycle=cycle,
        owner_id=sub.owner_id,
        payment_method_id=sub.require_payment_method(),
        members=sub.members,
        anchor=_whole_seconds(now),
        index=1,
        pending_changes=NO_CHANGES,
    )


def plan_reactivation(
    sub: Subscription,
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
    sub.ensure_status("failed_payment", "subscriptions are reactivated")
    sub.ensure_no_pending_charge()
    plan = sub.next_plan
    cycle = billing_cycle or sub.pending_changes.billing_cycle or sub.billing_cycle
    ensure_cycle(cycle)
    if not plan.offers(cycle):
        raise InvalidRequest.for_field(
            "billing_cycle", f"Plan {plan.plan_id} has no {cycle} price."
        )
    owner_id = sub.owner_id
    if owner is not None:
        owner.ensure_customer("owner_id")
        owner_id = owner.id
    members = sub.members
    if member_ids is not None:
        ensure_unique_ids(member_ids, "member_ids")
        if not member_ids:
            raise InvalidRequest.for_field("member_ids", "Keep at least one member.")
        existing = {m.profile_id: m for m in sub.members}
        members = tuple(
            existing.get(pid) or Member(pid, now, initial_fee(plan, sub.waive_activation_fee))
            for pid in member_ids
        )
    kept = len(sub.members) if plan.plan_id == sub.plan_id else 0
    ensure_capacity(plan, len(members), "member_ids", members_kept=kept)
    lines = [plan_line(plan, cycle, len(members)), *fee_lines(plan, members)]
    return _charge_plan(
        sub,
        "reactivation",
        lines,
        owner_credit,
        now,
        plan=plan,
        cycle=cycle,
        owner_id=owner_id,
        payment_method_id=payment_method_id or sub.require_payment_method(),
        members=members,
        anchor=_whole_seconds(now),
        index=1,
        pending_changes=NO_CHANGES,
    )


def plan_add_members(
    sub: Subscription,
    additions: Sequence[MemberAddition],
    now: datetime,
    *,
    owner_credit: int,
    current_plans: Mapping[str, Plan] | None = None,
) -> ChargePlan:
    """active: add members now; each pays the prorated unit price for the rest of the
    period plus the activation fee unless waived. Nobody is added if the charge fails.
    `current_plans` (the stored plans, by id): the additions must fit the latest
    `max_members` of the subscription's plan and of a queued one (lowered since: 400)."""
    ensure_utc(now)
    sub.ensure_status("active", "members are added")
    sub.ensure_no_pending_charge()
    period = sub.require_period()
    if now >= period.end:
        # Never charge a member for a period that began before they joined: the renewal of
        # the ended period runs first (the scheduler, minutes at most), then the addition.
        raise Conflict(
            f"The period ended at {period.end.isoformat()} and the subscription has not renewed "
            "yet; add the members once it has renewed."
        )
    if not additions:
        raise InvalidRequest.for_field("members", "Give at least one member to add.")
    ensure_unique_ids([a.profile_id for a in additions], "members")
    for index, addition in enumerate(additions):
        if sub.member(addition.profile_id) is not None:
            raise InvalidRequest.for_field(
                f"members[{index}].profile_id",
                f"Profile {addition.profile_id} is already a member.",
            )
        if addition.activation_fee not in ("charge", "waive"):
            raise InvalidRequest.for_field(
                f"members[{index}].activation_fee", "Must be charge or waive."
            )
    latest = current_plans or {}
    ensure_capacity(_latest_terms(sub.plan, latest), len(sub.members) + len(additions), "members")
    if sub.pending_changes.plan is not None:  # the queued plan must fit them too
        staying = len(sub.staying_members()) + len(additions)
        ensure_capacity(_latest_terms(sub.pending_changes.plan, latest), staying, "members")
    unit = rest_of_period(sub.unit_amount, sub.require_period(), now, sub.currency)
    new_members = tuple(
        Member(a.profile_id, now, initial_fee(sub.plan, waive=a.activation_fee == "waive"))
        for a in additions
    )
    lines: list[PaymentLine] = []
    for member in new_members:
        lines.append(added_member_line(sub.plan, member.profile_id, unit))
        lines += fee_lines(sub.plan, (member,))
    return _charge_plan(
        sub,
        "proration",
        lines,
        owner_credit,
        now,
        plan=sub.plan,
        cycle=sub.billing_cycle,
        owner_id=sub.owner_id,
        payment_method_id=sub.require_payment_method(),
        members=(*sub.members, *new_members),
        anchor=sub.require_anchor(),
        index=sub.period_index,
        pending_changes=sub.pending_changes,
    )


def _latest_terms(snapshot: PlanSnapshot, current_plans: Mapping[str, Plan]) -> PlanSnapshot:
    """The stored plan's terms when given (a PATCH changed them since), else the snapshot's."""
    current = current_plans.get(snapshot.plan_id)
    return snapshot if current is None else plan_snapshot(current)


def plan_change_now(
    sub: Subscription, plan: Plan, now: datetime, *, owner_credit: int
) -> ChargePlan:
    """active: switch plans now. Dearer: the prorated difference per member is charged.
    Cheaper: nothing is charged (subtotal 0) and `credit_granted` goes to the owner."""
    ensure_utc(now)
    sub.ensure_status("active", "plans change")
    sub.ensure_no_pending_charge()
    if plan.id == sub.plan_id:
        raise InvalidRequest.for_field("plan_id", "The subscription is already on this plan.")
    snapshot = check_new_plan(sub, plan, sub.billing_cycle, len(sub.members))
    period = sub.require_period()
    # The difference of the prices is prorated and rounded once (prorating both prices and
    # subtracting rounds twice: one minor unit off in about a quarter of cases).
    price_difference = snapshot.unit_amount(sub.billing_cycle) - sub.unit_amount
    difference = rest_of_period(abs(price_difference), period, now, sub.currency)
    count = len(sub.members)
    lines: list[PaymentLine] = []
    if price_difference > 0 and difference > 0:
        lines.append(plan_change_line(sub.plan, snapshot, difference, count))
    pending = sub.pending_changes
    if pending.billing_cycle is not None and not snapshot.offers(pending.billing_cycle):
        raise Conflict(
            f"The queued change to the {pending.billing_cycle} billing cycle at period end is "
            f"not offered by plan {plan.id}; change the billing cycle back to "
            f"{sub.billing_cycle} first."
        )
    return _charge_plan(
        sub,
        "plan_change",
        lines,
        owner_credit,
        now,
        plan=snapshot,
        cycle=sub.billing_cycle,
        owner_id=sub.owner_id,
        payment_method_id=sub.require_payment_method(),
        members=sub.members,
        anchor=sub.require_anchor(),
        index=sub.period_index,
        pending_changes=replace(pending, plan=None),
        credit_granted=difference * count if price_difference < 0 else 0,
    )


# The request field a caller changes to bring a charge of each kind within Stripe's maximum.
# Renewals and retries have no caller: `ensure_capacity` keeps a whole period within it.
_FIELD_OF_A_TOO_LARGE_CHARGE: dict[PaymentKind, str] = {
    "activation": "member_ids",
    "reactivation": "member_ids",
    "proration": "members",
    "plan_change": "plan_id",
}


def _charge_plan(
    sub: Subscription,
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
    # Amounts carried from earlier sub-minimum charges come first, each as its own line.
    carried_in = [carried_line(c) for c in sub.carried]
    all_lines, subtotal, credit, total, carried_forward = with_credit(
        [*carried_in, *lines], owner_credit, sub.currency
    )
    too_large_field = _FIELD_OF_A_TOO_LARGE_CHARGE.get(kind)
    if too_large_field is not None:
        ensure_within_maximum(sub.currency, total, too_large_field, f"The {kind} charge")
    carried_after: tuple[CarriedAmount, ...] = ()
    if carried_forward:
        # Nothing is charged now: everything on the order is carried, once, to the next one.
        carried_after = sub.carried
        own = sum(line.amount for line in lines)
        if own:
            description = "; ".join(line.description for line in lines)
            carried_after = (*sub.carried, CarriedAmount(own, now, description))
    period = period_bounds(anchor, cycle, index)
    # Keyed by state, not by `now`: two workers planning from one state get one key.
    current = sub.current_period
    key_start = period.start if kind == "renewal" else (current.start if current else None)
    key = charge_key(sub.id, kind, key_start, sub.version)
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
        carried=carried_after,
    )
    return ChargePlan(
        subscription_id=sub.id,
        community_id=sub.community_id,
        kind=kind,
        currency=sub.currency,
        lines=all_lines,
        subtotal=subtotal,
        credit_applied=credit,
        total=total,
        period=period,
        billed_to_profile_id=owner_id,
        payment_method_id=payment_method_id,
        charge_key=key,
        base_version=sub.version,
        credit_granted=credit_granted,
        pending=pending,
        carried_forward=carried_forward,
    )


def _whole_seconds(now: datetime) -> datetime:
    return now.replace(microsecond=0)
