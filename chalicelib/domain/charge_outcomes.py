"""Charge outcomes: the subscription transitions a charge causes (DESIGN.md section 6).

With the `ChargePlan` `charge` from `charge_planning`:
- `charge.needs_stripe` (total > 0):
    1. `begin_charge(sub, charge, payment_id, now)` + `payments.new_payment(...)` in one
       transaction (Outcome.credit_change reserves the credit: add its delta to that profile's
       balance);
    2. Stripe; 3. `apply_charge_succeeded(sub, payment_id, now)` or
       `apply_charge_failed(sub, payment_id, now)` with the payment's own transition.
- otherwise: `settle_without_stripe(sub, charge, now, payment_id=...)` in one transaction (pass
  a payment id and write a succeeded payment when `charge.needs_payment`, i.e. credit paid it
  all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from chalicelib.domain.billing.charges import ChargePlan, PendingCharge, PlanSnapshot
from chalicelib.domain.declines import is_hard_decline
from chalicelib.domain.errors import ConcurrentChange, Conflict
from chalicelib.domain.events import Actor, AuditEvent, DetailValue, audit_event
from chalicelib.domain.members import Member
from chalicelib.domain.periods import ensure_utc
from chalicelib.domain.platform_events import utc_text
from chalicelib.domain.subscriptions import (
    Outcome,
    PendingChanges,
    Subscription,
    changed_values,
    credit_change,
    with_former,
)


def begin_charge(
    sub: Subscription,
    charge: ChargePlan,
    payment_id: str,
    now: datetime,
    actor: Actor = "api",
    *,
    on_pay_page: bool = False,
) -> Outcome:
    """Phase 1: store the pending charge (written with the pending payment). Reserves the
    credit applied (credit_change). `on_pay_page`: the customer pays through a pay-now link,
    which the audit event says (`via: "pay_page"`), so it is not taken for the operator's call."""
    ensure_utc(now)
    _ensure_plan_is_current(sub, charge)
    if not charge.needs_stripe:
        raise ValueError("nothing to charge through Stripe: use settle_without_stripe")
    pending = replace(charge.pending, payment_id=payment_id, started_at=now)
    updated = replace(sub, pending_charge=pending)
    event = audit_event(
        now,
        "payment.started",
        sub.status,
        sub.status,
        actor,
        payment_id=payment_id,
        kind=charge.kind,
        total=charge.total,
        via="pay_page" if on_pay_page else None,
    )
    return Outcome(
        updated, event, credit_change(charge.billed_to_profile_id, -charge.credit_applied)
    )


def apply_charge_succeeded(
    sub: Subscription, payment_id: str, now: datetime, actor: Actor = "api"
) -> Outcome:
    """Phase 3, success: the subscription takes the values the charge paid for."""
    ensure_utc(now)
    pending = _pending_for(sub, payment_id)
    updated, event = _succeed(sub, pending, payment_id, now, actor)
    return Outcome(updated, event, credit_change(pending.owner_id, pending.credit_granted))


def apply_charge_failed(
    sub: Subscription,
    payment_id: str,
    now: datetime,
    actor: Actor = "api",
    *,
    code: str | None = None,
    decline_code: str | None = None,
) -> Outcome:
    """Phase 3, failure: changes are discarded, the reserved credit returns; a failed
    renewal starts the failed-payment flow, a failed retry schedules the next retry.

    `code` / `decline_code`: Stripe's answer. After a hard decline (stolen, lost, pick-up
    card...: domain/declines.py) no automatic retry is scheduled; grace still ends as usual."""
    ensure_utc(now)
    pending = _pending_for(sub, payment_id)
    cleared = replace(sub, pending_charge=None)
    refund_credit = credit_change(pending.billed_to_profile_id, pending.credit_applied)
    details: dict[str, DetailValue] = {"payment_id": payment_id, "kind": pending.kind}
    hard = is_hard_decline(code, decline_code)
    if hard:
        details["retries_stopped"] = decline_code or code
    if pending.kind == "renewal":
        # Grace and retries follow the plan this renewal moved to (a queued plan change, else
        # its own plan), on its terms when the renewal was planned (a PATCHed plan applies to
        # subscriptions that fail afterwards). The failed subscription keeps its plan and the
        # queued change (the retries charge it), both on those latest terms.
        terms = pending.plan
        own_plan = pending.failure_terms
        if own_plan is None or own_plan.plan_id != sub.plan_id:
            own_plan = sub.plan
        queued = sub.pending_changes
        if queued.plan_id == terms.plan_id and terms.plan_id != sub.plan_id:
            queued = replace(queued, plan=terms)
        grace = timedelta(days=terms.failed_payment_grace_days)
        staying = {m.profile_id for m in pending.members}
        leaving = [m for m in sub.members if m.profile_id not in staying]
        failed = replace(
            cleared,
            status="failed_payment",
            plan=own_plan,
            pending_changes=queued,
            members=pending.members,
            former_members=with_former(sub, _removed(leaving, pending.period.start)),
            failed_at=now,
            grace_ends_at=now + grace,
            # API.md: a failed_payment subscription shows when it is cancelled unless paid.
            cancel_at=now + grace,
            retry_count=0,
            next_retry_at=None if hard else _retry_at(terms, now, 0, now),
        )
        details |= _changes_applied(sub, failed, leaving)
        event = AuditEvent(
            now, "subscription.renewal_failed", "active", "failed_payment", actor, details
        )
        return Outcome(failed, event, refund_credit)
    if pending.kind == "retry":
        attempts = sub.retry_count + 1
        failed_at = sub.failed_at or now
        retried = replace(
            cleared,
            retry_count=attempts,
            next_retry_at=None if hard else _retry_at(sub.next_plan, failed_at, attempts, now),
        )
        event = AuditEvent(now, "subscription.retry_failed", sub.status, sub.status, actor, details)
        return Outcome(retried, event, refund_credit)
    event = AuditEvent(
        now, f"subscription.{pending.kind}_failed", sub.status, sub.status, actor, details
    )
    return Outcome(cleared, event, refund_credit)


def settle_without_stripe(
    sub: Subscription,
    charge: ChargePlan,
    now: datetime,
    *,
    payment_id: str | None = None,
    actor: Actor = "api",
) -> Outcome:
    """Apply a charge that needs no Stripe call (total 0: free plan, cheaper plan, or credit
    paid it all) in one step. `payment_id` is required when `charge.needs_payment`."""
    ensure_utc(now)
    _ensure_plan_is_current(sub, charge)
    if charge.needs_stripe:
        raise ValueError("this charge needs Stripe: use begin_charge")
    if charge.needs_payment and payment_id is None:
        raise ValueError("a payment record is needed when credit paid the charge")
    pending = replace(charge.pending, payment_id=payment_id, started_at=now)
    updated, event = _succeed(sub, pending, payment_id, now, actor)
    delta = pending.credit_granted - pending.credit_applied
    return Outcome(updated, event, credit_change(pending.owner_id, delta))


def _succeed(
    sub: Subscription, pending: PendingCharge, payment_id: str | None, now: datetime, actor: Actor
) -> tuple[Subscription, AuditEvent]:
    staying = {m.profile_id for m in pending.members}
    leaving = [m for m in sub.members if m.profile_id not in staying]
    removed_at = pending.period.start if pending.kind == "renewal" else now
    updated = replace(
        sub,
        status="active",
        plan=pending.plan,
        billing_cycle=pending.billing_cycle,
        owner_id=pending.owner_id,
        payment_method_id=pending.payment_method_id,
        members=tuple(m.fee_paid_by(payment_id) for m in pending.members),
        former_members=with_former(sub, _removed(leaving, removed_at)),
        period_anchor=pending.period_anchor,
        period_index=pending.period_index,
        pending_changes=PendingChanges(
            pending.pending_changes_billing_cycle, pending.pending_changes_plan
        ),
        pending_charge=None,
        cancel_at=None,
        failed_at=None,
        grace_ends_at=None,
        next_retry_at=None,
        retry_count=0,
        activated_at=sub.activated_at or now,
        carried=pending.carried,
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
        "period_start": utc_text(pending.period.start),
        "period_end": utc_text(pending.period.end),
    }
    if pending.kind == "proration":
        details["member_ids"] = sorted(pid for pid in staying if sub.member(pid) is None)
    if pending.kind == "plan_change":
        details["plan_id"] = pending.plan.plan_id
        details["credit_granted"] = pending.credit_granted
    details |= _changes_applied(sub, updated, leaving)
    return updated, AuditEvent(now, event_type, sub.status, "active", actor, details)


def _changes_applied(
    before: Subscription, after: Subscription, leaving: list[Member]
) -> dict[str, DetailValue]:
    """What a charge's outcome changed besides its period, named in its audit event: members
    whose removal took effect, and a new owner, plan or billing cycle (queued changes applied
    at a renewal, a reactivation's own changes)."""
    details: dict[str, DetailValue] = {}
    if leaving:
        details["removed_member_ids"] = sorted(m.profile_id for m in leaving)
    details |= changed_values(before, after, "owner_id", "plan_id", "billing_cycle")
    return details


def _ensure_plan_is_current(sub: Subscription, charge: ChargePlan) -> None:
    if charge.subscription_id != sub.id:
        raise ValueError("the charge plan belongs to another subscription")
    sub.ensure_no_pending_charge()
    if charge.base_version != sub.version:
        raise ConcurrentChange("The subscription changed since the charge was planned.")


def _pending_for(sub: Subscription, payment_id: str) -> PendingCharge:
    pending = sub.pending_charge
    if pending is None or pending.payment_id != payment_id:
        raise Conflict(f"Payment {payment_id} is not in progress on subscription {sub.id}.")
    return pending


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
