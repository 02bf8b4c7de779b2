"""Random operation sequences on one subscription (and its payments), checking DESIGN.md's
invariants after every step. Operations run through the same two-phase charge flow the service
uses; each may succeed, be refused, or have its charge declined."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chalicelib.domain.access import has_access
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.charge_outcomes import (
    apply_charge_failed,
    apply_charge_succeeded,
    begin_charge,
    settle_without_stripe,
)
from chalicelib.domain.charge_planning import (
    plan_activation,
    plan_add_members,
    plan_change_now,
    plan_reactivation,
    plan_renewal,
    plan_retry,
)
from chalicelib.domain.errors import Conflict, DomainError
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.payments import (
    BilledTo,
    Payment,
    PaymentFailure,
    PaymentMethodSummary,
    new_payment,
)
from chalicelib.domain.subscription_changes import (
    SubscriptionUpdate,
    change_plan_at_period_end,
    remove_member,
    restore_member,
    update_subscription,
)
from chalicelib.domain.subscriptions import STATUSES, Outcome, Subscription
from tests.unit.domain.factories import T0, customer, dependent, make_plan

PLANS = {
    "basic": make_plan(
        "plan_basic", month=3000, year=30000, activation_fee=500, retry_days=(2, 5), grace_days=10
    ),
    "gold": make_plan("plan_gold", month=5000, year=None, activation_fee=0, max_members=4),
    "lite": make_plan(
        "plan_lite", month=999, year=9999, activation_fee=250, retry_days=(), grace_days=3
    ),
    "free": make_plan("plan_free", month=0, year=0, activation_fee=0),
}
PEOPLE = ["prof_a", "prof_b", "prof_c", "prof_d", "prof_e"]
OWNERS = ["prof_owner", "prof_o2"]
DECLINE = PaymentFailure("card_declined", "generic_decline", "Declined.")

# What expiring / cancelled subscriptions accept (DESIGN.md section 2); everything else: 409.
ALLOWED_WHEN_FROZEN = {"expiring": {"resume", "cancel_now", "expire"}, "cancelled": set()}

people = st.lists(st.sampled_from(PEOPLE), min_size=0, max_size=4, unique=True)


class SubscriptionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.credit = dict.fromkeys(OWNERS, 0)
        self.payments: dict[str, Payment] = {}
        self.counter = 0
        self.ever_active = False
        self.succeeded_keys: list[str] = []
        self.sub: Subscription

    @initialize(
        plan=st.sampled_from(sorted(PLANS)),
        members=st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True),
        cycle=st.sampled_from(["month", "year"]),
        activate_now=st.booleans(),
    )
    def create(self, plan: str, members: list[str], cycle: str, activate_now: bool) -> None:
        """A new subscription; half the runs start from an active one to reach deeper states."""
        chosen = PLANS[plan]
        if cycle not in chosen.prices:
            cycle = "month"
        self.sub = Subscription.create(
            subscription_id="sub_1",
            community_id="com_1",
            plan=chosen,
            owner=customer("prof_owner"),
            member_ids=members[: chosen.max_members or 5],
            billing_cycle=cycle,  # type: ignore[arg-type]
            payment_method_id="pm_1",
            waive_activation_fee=False,
            now=self.now,
        ).subscription
        if activate_now:
            self._charge(plan_activation(self.sub, self.now, owner_credit=0), succeed=True)
            assert self.sub.status == "active"

    # ---------------------------------------------------------------- plumbing

    def _store(self, outcome: Outcome | None) -> None:
        if outcome is None:
            return
        assert outcome.event.at == self.now
        if outcome.credit_change is not None:
            self.credit[outcome.credit_change.profile_id] = (
                self.credit.get(outcome.credit_change.profile_id, 0) + outcome.credit_change.delta
            )
        self.sub = replace(outcome.subscription, version=outcome.subscription.version + 1)

    def _attempt(self, name: str, action: Callable[[], Any]) -> Any:
        before = self.sub
        frozen = ALLOWED_WHEN_FROZEN.get(before.status)
        try:
            result = action()
        except DomainError as error:
            if frozen is not None and name not in frozen:
                assert isinstance(error, Conflict), (name, before.status, error)
            return None
        assert frozen is None or name in frozen, f"{name} changed a {before.status} subscription"
        return result

    def _charge(self, charge: ChargePlan | None, succeed: bool) -> None:
        if charge is None:
            return
        owner_credit_before = self.credit.get(charge.billed_to_profile_id, 0)
        assert charge.credit_applied <= owner_credit_before
        if not charge.needs_stripe:
            payment_id = None
            if charge.needs_payment:
                payment_id = self._new_payment(charge)
                self.payments[payment_id] = self.payments[payment_id].succeed(self.now).payment
                self.succeeded_keys.append(charge.charge_key)
            self._store(settle_without_stripe(self.sub, charge, self.now, payment_id=payment_id))
            return
        payment_id = self._new_payment(charge)
        self._store(begin_charge(self.sub, charge, payment_id, self.now))
        assert self.sub.next_action is None
        if succeed:
            change = self.payments[payment_id].succeed(
                self.now, payment_intent_id=f"pi_{payment_id}"
            )
            self.payments[payment_id] = change.payment
            self.succeeded_keys.append(charge.charge_key)
            self._store(apply_charge_succeeded(self.sub, payment_id, self.now, actor="webhook"))
            # a late failure changes nothing
            assert not self.payments[payment_id].fail(DECLINE, self.now).changed
        else:
            self.payments[payment_id] = self.payments[payment_id].fail(DECLINE, self.now).payment
            self._store(apply_charge_failed(self.sub, payment_id, self.now))

    def _new_payment(self, charge: ChargePlan) -> str:
        self.counter += 1
        payment_id = f"pay_{self.counter}"
        billed = BilledTo(charge.billed_to_profile_id, "Owner", None)
        card = PaymentMethodSummary("card", "visa", "4242")
        self.payments[payment_id] = new_payment(
            charge, payment_id, billed, card, "acct_1", 300, self.now
        )
        if charge.kind == "activation":
            assert self.sub.status == "inactive"
        else:
            assert self.sub.status != "inactive", "inactive subscriptions are never billed"
        return payment_id

    # ---------------------------------------------------------------- rules

    @rule(days=st.integers(0, 45), seconds=st.integers(0, 86_399))
    def advance_clock(self, days: int, seconds: int) -> None:
        self.now = self.now + timedelta(days=days, seconds=seconds)

    @rule(succeed=st.booleans(), late_seconds=st.integers(0, 3 * 86_400))
    def run_next_scheduled_action(self, succeed: bool, late_seconds: int) -> None:
        """Move the clock to the next scheduled action (the scheduler may be late), run it."""
        action = self.sub.next_action
        if action is None:
            return
        self.now = max(self.now, action.due_at + timedelta(seconds=late_seconds))
        credit = self.credit.get(self.sub.owner_id, 0)
        if action.action == "renew":
            self._charge(
                self._attempt(
                    "renew", lambda: plan_renewal(self.sub, self.now, owner_credit=credit)
                ),
                succeed,
            )
        elif action.action == "retry":
            self._charge(
                self._attempt("retry", lambda: plan_retry(self.sub, self.now, owner_credit=credit)),
                succeed,
            )
        elif action.action == "expire":
            self._store(self._attempt("expire", lambda: self.sub.expire(self.now)))
        else:
            self._store(self._attempt("end_grace", lambda: self.sub.end_grace(self.now)))

    @rule(succeed=st.booleans(), credit=st.integers(0, 4000))
    def activate(self, succeed: bool, credit: int) -> None:
        self.credit[self.sub.owner_id] = max(self.credit.get(self.sub.owner_id, 0), credit)
        owner_credit = self.credit[self.sub.owner_id]
        charge = self._attempt(
            "activate", lambda: plan_activation(self.sub, self.now, owner_credit=owner_credit)
        )
        self._charge(charge, succeed)

    @rule(
        plan=st.none() | st.sampled_from(sorted(PLANS)),
        owner=st.none() | st.sampled_from(OWNERS),
        members=st.none() | people,
        cycle=st.none() | st.sampled_from(["month", "year"]),
        waive=st.none() | st.booleans(),
    )
    def update(
        self,
        plan: str | None,
        owner: str | None,
        members: list[str] | None,
        cycle: str | None,
        waive: bool | None,
    ) -> None:
        changes = SubscriptionUpdate(
            plan=PLANS[plan] if plan else None,
            owner=customer(owner) if owner else None,
            member_ids=members,
            billing_cycle=cycle,  # type: ignore[arg-type]
            waive_activation_fee=waive,
        )
        outcome = self._attempt("update", lambda: update_subscription(self.sub, changes, self.now))
        if outcome is not None:
            self._store(outcome)

    @rule(at=st.sampled_from(["period_end", "now"]))
    def cancel(self, at: str) -> None:
        name = "cancel_now" if at == "now" else "cancel_period_end"
        outcome = self._attempt(name, lambda: self.sub.cancel(at, self.now))  # type: ignore[arg-type]
        if outcome is not None:
            self._store(outcome)

    @rule()
    def resume(self) -> None:
        outcome = self._attempt("resume", lambda: self.sub.resume(self.now))
        if outcome is not None:
            self._store(outcome)

    @rule(
        succeed=st.booleans(),
        members=st.none() | st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True),
        cycle=st.none() | st.sampled_from(["month", "year"]),
        owner=st.none() | st.sampled_from(OWNERS),
    )
    def reactivate(
        self, succeed: bool, members: list[str] | None, cycle: str | None, owner: str | None
    ) -> None:
        billed = owner or self.sub.owner_id
        credit = self.credit.get(billed, 0)
        charge = self._attempt(
            "reactivate",
            lambda: plan_reactivation(
                self.sub,
                self.now,
                owner_credit=credit,
                owner=customer(owner) if owner else None,
                billing_cycle=cycle,  # type: ignore[arg-type]
                member_ids=members,
            ),
        )
        self._charge(charge, succeed)

    @rule(
        members=people,
        newcomers_only=st.booleans(),
        waive=st.booleans(),
        succeed=st.booleans(),
    )
    def add_members(
        self, members: list[str], newcomers_only: bool, waive: bool, succeed: bool
    ) -> None:
        if newcomers_only:  # mostly valid additions; the other half probes the refusals
            members = [pid for pid in members if self.sub.member(pid) is None]
        additions = [MemberAddition(pid, "waive" if waive else "charge") for pid in members]
        credit = self.credit.get(self.sub.owner_id, 0)
        charge = self._attempt(
            "add_members",
            lambda: plan_add_members(self.sub, additions, self.now, owner_credit=credit),
        )
        self._charge(charge, succeed)

    def _pick_profile(self, data: st.DataObject) -> str:
        """Mostly a current member (the interesting case), sometimes anyone (404s)."""
        current = self.sub.member_ids
        if current and data.draw(st.booleans()):
            return data.draw(st.sampled_from(current))
        return data.draw(st.sampled_from(PEOPLE))

    @rule(data=st.data(), at=st.sampled_from(["period_end", "now"]))
    def remove_member(self, data: st.DataObject, at: str) -> None:
        profile = self._pick_profile(data)
        outcome = self._attempt(
            "remove_member",
            lambda: remove_member(self.sub, profile, at, self.now),  # type: ignore[arg-type]
        )
        self._store(outcome)

    @rule(data=st.data())
    def restore_member(self, data: st.DataObject) -> None:
        profile = self._pick_profile(data)
        outcome = self._attempt(
            "restore_member", lambda: restore_member(self.sub, profile, self.now)
        )
        self._store(outcome)

    @rule(plan=st.sampled_from(sorted(PLANS)), now=st.booleans(), succeed=st.booleans())
    def change_plan(self, plan: str, now: bool, succeed: bool) -> None:
        if now:
            credit = self.credit.get(self.sub.owner_id, 0)
            charge = self._attempt(
                "change_plan",
                lambda: plan_change_now(self.sub, PLANS[plan], self.now, owner_credit=credit),
            )
            self._charge(charge, succeed)
        else:
            outcome = self._attempt(
                "change_plan", lambda: change_plan_at_period_end(self.sub, PLANS[plan], self.now)
            )
            if outcome is not None:
                self._store(outcome)

    @rule()
    def delete(self) -> None:
        self._attempt("delete", lambda: self.sub.ensure_deletable(self.now))

    @rule(data=st.data())
    def refund_or_dispute(self, data: st.DataObject) -> None:
        if not self.payments:
            return
        payment_id = data.draw(st.sampled_from(sorted(self.payments)))
        payment = self.payments[payment_id]
        choice = data.draw(st.sampled_from(["refund", "dispute", "close_won", "close_lost"]))
        try:
            if choice == "refund":
                amount = data.draw(st.none() | st.integers(1, max(1, payment.total)))
                change, _ = payment.refund(amount, self.now)
            elif choice == "dispute":
                change = payment.open_dispute(self.now)
            else:
                change = payment.close_dispute(choice == "close_won", self.now)
        except DomainError:
            return
        self.payments[payment_id] = change.payment

    # ---------------------------------------------------------------- invariants

    @invariant()
    def status_is_one_of_five(self) -> None:
        assert self.sub.status in STATUSES
        if self.sub.status != "inactive":
            self.ever_active = self.ever_active or self.sub.status == "active"
        assert not (self.ever_active and self.sub.status == "inactive")

    @invariant()
    def members_are_unique_and_within_the_plan(self) -> None:
        ids = self.sub.member_ids
        assert len(ids) == len(set(ids))
        if self.sub.plan.max_members is not None:
            assert len(ids) <= self.sub.plan.max_members
        if self.sub.status in ("active", "expiring", "failed_payment"):
            assert ids, "a live subscription always has members"
            assert self.sub.current_period is not None
        assert self.sub.pending_charge is None

    @invariant()
    def payments_add_up(self) -> None:
        for payment in self.payments.values():
            charged = sum(ln.amount for ln in payment.lines if ln.kind != "credit")
            assert payment.total == charged - payment.credit_applied >= 0
            assert payment.total == sum(ln.amount for ln in payment.lines)
            assert 0 <= payment.amount_refunded <= payment.amount_paid <= payment.total
        assert all(balance >= 0 for balance in self.credit.values())
        assert len(self.succeeded_keys) == len(set(self.succeeded_keys))

    @invariant()
    def access_matches_the_design(self) -> None:
        for pid in PEOPLE:
            member = self.sub.member(pid)
            expected = (
                self.sub.status in ("active", "expiring")
                and member is not None
                and (member.removal_effective_at is None or self.now < member.removal_effective_at)
            )
            assert has_access(dependent(pid), [self.sub], self.now).has_access == expected
            free = replace(dependent(pid), free_access=True)
            assert has_access(free, [self.sub], self.now).has_access

    @invariant()
    def scheduled_action_is_consistent(self) -> None:
        action = self.sub.next_action
        status = self.sub.status
        if status in ("inactive", "cancelled"):
            assert action is None
        elif status == "active":
            assert action is not None and action.action == "renew"
        elif status == "expiring":
            assert action is not None and action.action == "expire"
        else:
            assert action is not None and action.action in ("retry", "end_grace")
            assert self.sub.grace_ends_at is not None and self.sub.failed_at is not None


SubscriptionMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSubscriptionMachine = SubscriptionMachine.TestCase
