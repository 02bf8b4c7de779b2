"""Subscription use cases behind API.md's Subscriptions section.

Every change reads the subscription in a unit of work, asks the domain for the new state (or a
charge plan), and commits state + audit event (+ payment, charge key, credit) once,
conditional on the version read. A command that loses a race re-reads and re-applies itself
(`retrying`), so concurrent changes never lose an update; charges go through `Charging`
(DESIGN.md section 6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.charge_planning import (
    plan_activation,
    plan_change_now,
    plan_reactivation,
    plan_renewal,
)
from chalicelib.domain.communities import Community
from chalicelib.domain.currencies import currency
from chalicelib.domain.errors import Conflict, InvalidRequest, NotFound, PaymentFailed
from chalicelib.domain.ids import new_id
from chalicelib.domain.money import application_fee
from chalicelib.domain.plans import BillingCycle, Plan
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscription_changes import (
    SubscriptionUpdate,
    change_plan_at_period_end,
    update_subscription,
)
from chalicelib.domain.subscriptions import Outcome, Subscription
from chalicelib.services.cards import Cards
from chalicelib.services.charging import ChargeResult, Charging, stage_change, written
from chalicelib.services.events import subscription_changed
from chalicelib.services.ports import Clock, UnitOfWorkFactory
from chalicelib.services.retrying import retrying


class PlanFinder(Protocol):
    def find(self, community_id: str, plan_id: str) -> Plan | None: ...


class ProfileReader(Protocol):
    def find(self, community_id: str, profile_id: str) -> Profile | None: ...
    def get(self, community_id: str, profile_id: str) -> Profile: ...
    def get_many(self, community_id: str, profile_ids: list[str]) -> dict[str, Profile]:
        """By id, batched (may miss a profile written a moment ago: re-check with find)."""
        ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class SubscriptionListing(Protocol):
    def find(self, community_id: str, subscription_id: str) -> Subscription | None: ...
    def get(self, community_id: str, subscription_id: str) -> Subscription: ...
    def list(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        plan_id: str | None = None,
        owner_id: str | None = None,
        member_id: str | None = None,
    ) -> tuple[list[Subscription], bool, str | None]: ...


class AuditListing(Protocol):
    def list(
        self, community_id: str, subscription_id: str, limit: int, cursor: str | None
    ) -> Any: ...


def fail_if_declined(result: ChargeResult) -> None:
    """A declined charge is a 402 carrying the failed payment."""
    from chalicelib.services.views import payment_view

    payment = result.payment
    if payment is not None and payment.status == "failed":
        failure = payment.failure
        reason = f"{failure.code}: {failure.message}" if failure else "declined"
        raise PaymentFailed(f"The payment failed ({reason}).", payment=payment_view(payment))


class SubscriptionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        charging: Charging,
        cards: Cards,
        plans: PlanFinder,
        profiles: ProfileReader,
        communities: CommunityReader,
        subscriptions: SubscriptionListing,
        audit: AuditListing,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._charging = charging
        self._cards = cards
        self._plans = plans
        self._profiles = profiles
        self._communities = communities
        self._subscriptions = subscriptions
        self._audit = audit
        self._clock = clock

    # --- lookups ------------------------------------------------------------------------------
    def profile(self, community_id: str, profile_id: str, field: str) -> Profile:
        profile = self._profiles.find(community_id, profile_id)
        if profile is None:
            raise InvalidRequest.for_field(field, f"Profile {profile_id} not found.")
        return profile

    def _plan(self, community_id: str, plan_id: str) -> Plan:
        plan = self._plans.find(community_id, plan_id)
        if plan is None:
            raise InvalidRequest.for_field("plan_id", f"Plan {plan_id} not found.")
        return plan

    def stored_plans(self, community_id: str, sub: Subscription) -> dict[str, Plan]:
        """The stored plans of the subscription and of its queued plan change, by id: their
        latest terms (a PATCH may have changed them since the subscription's snapshot)."""
        found = {plan_id: self._plans.find(community_id, plan_id) for plan_id in sub.plan_ids}
        return {plan_id: plan for plan_id, plan in found.items() if plan is not None}

    def profiles(
        self, community_id: str, ids: Sequence[str], field: str, suffix: str = ""
    ) -> list[Profile]:
        """The profiles, in order, read in batches (up to 1,000 members); a missing one is a
        400 naming `field[index]` (re-checked with a consistent read first)."""
        found = self._profiles.get_many(community_id, list(ids))
        return [
            found.get(profile_id)
            or self.profile(community_id, profile_id, f"{field}[{index}]{suffix}")
            for index, profile_id in enumerate(ids)
        ]

    def _members_exist(self, community_id: str, ids: Sequence[str], field: str) -> None:
        self.profiles(community_id, ids, field)

    def owner_credit(self, community_id: str, profile_id: str, currency: str) -> int:
        """The credit `profile_id` holds in `currency` (credit is never spent in another)."""
        return self._profiles.get(community_id, profile_id).credit_in(currency)

    # --- create / read / edit / delete --------------------------------------------------------
    def create(
        self,
        community_id: str,
        *,
        plan_id: str,
        owner_id: str,
        member_ids: Sequence[str],
        billing_cycle: BillingCycle,
        payment_method_id: str | None,
        waive_activation_fee: bool,
    ) -> Subscription:
        plan = self._plan(community_id, plan_id)
        owner = self.profile(community_id, owner_id, "owner_id")
        self._members_exist(community_id, member_ids, "member_ids")
        if payment_method_id is not None:
            owner.ensure_customer("owner_id")
            self._cards.require(community_id, owner_id, payment_method_id)
        now = self._clock.now()
        outcome = Subscription.create(
            subscription_id=new_id("sub"),
            community_id=community_id,
            plan=plan,
            owner=owner,
            member_ids=list(member_ids),
            billing_cycle=billing_cycle,
            payment_method_id=payment_method_id,
            waive_activation_fee=waive_activation_fee,
            now=now,
        )
        sub = outcome.subscription
        with self._uow() as uow:
            uow.subscriptions.add(sub)
            uow.audit.record(sub, outcome.event, changes_state=True)
            subscription_changed(uow, None, sub, outcome.event.type, now)
            uow.commit()
        return self.get(community_id, sub.id)

    def get(self, community_id: str, subscription_id: str) -> Subscription:
        return self._subscriptions.get(community_id, subscription_id)

    def list_subscriptions(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        plan_id: str | None = None,
        owner_id: str | None = None,
        member_id: str | None = None,
    ) -> tuple[list[Subscription], bool, str | None]:
        return self._subscriptions.list(
            community_id,
            limit=limit,
            cursor=cursor,
            status=status,
            plan_id=plan_id,
            owner_id=owner_id,
            member_id=member_id,
        )

    def update(
        self, community_id: str, subscription_id: str, given: dict[str, Any]
    ) -> Subscription:
        """PATCH: `given` holds only the fields the request named (all-or-nothing)."""
        for name in (
            "plan_id",
            "owner_id",
            "member_ids",
            "billing_cycle",
            "payment_method_id",
            "waive_activation_fee",
        ):
            if name in given and given[name] is None:
                raise InvalidRequest.for_field(name, "Must not be null.")
        plan = self._plan(community_id, given["plan_id"]) if "plan_id" in given else None
        owner = (
            self.profile(community_id, given["owner_id"], "owner_id")
            if "owner_id" in given
            else None
        )
        if "member_ids" in given:
            self._members_exist(community_id, given["member_ids"], "member_ids")

        def decide(sub: Subscription, now: datetime) -> Outcome:
            card_owner = owner.id if owner is not None else sub.owner_id
            if "payment_method_id" in given:
                self._cards.require(community_id, card_owner, given["payment_method_id"])
            elif owner is not None and sub.payment_method_id:
                # The card is charged on the owner's customer: a new owner needs their own card.
                self._cards.require(community_id, card_owner, sub.payment_method_id)
            changes = SubscriptionUpdate(
                plan=plan,
                owner=owner,
                member_ids=given.get("member_ids"),
                billing_cycle=given.get("billing_cycle"),
                payment_method_id=given.get("payment_method_id"),
                waive_activation_fee=given.get("waive_activation_fee"),
            )
            return update_subscription(sub, changes, now)

        return self.transition(community_id, subscription_id, decide)

    def delete(self, community_id: str, subscription_id: str) -> None:
        def step() -> None:
            with self._uow() as uow:
                sub = uow.subscriptions.get(community_id, subscription_id)
                event = sub.ensure_deletable(self._clock.now())
                uow.subscriptions.delete(sub)
                uow.audit.record(written(sub, sub), event, changes_state=True)
                uow.commit()

        retrying(step)

    # --- plain transitions --------------------------------------------------------------------
    def transition(
        self,
        community_id: str,
        subscription_id: str,
        decide: Callable[[Subscription, datetime], Outcome],
    ) -> Subscription:
        """A plain (non-charging) change, retried on a lost race."""

        def step() -> Subscription:
            with self._uow() as uow:
                sub = uow.subscriptions.get(community_id, subscription_id)
                after = stage_change(uow, sub, decide(sub, self._clock.now()))
                uow.commit()
            return after

        return retrying(step)

    def cancel(self, community_id: str, subscription_id: str, at: str) -> Subscription:
        return self.transition(
            community_id,
            subscription_id,
            lambda sub, now: sub.cancel(at, now),  # type: ignore[arg-type]
        )

    def resume(self, community_id: str, subscription_id: str) -> Subscription:
        return self.transition(community_id, subscription_id, lambda sub, now: sub.resume(now))

    # --- charging commands ----------------------------------------------------------------------
    def charged_change(
        self,
        community_id: str,
        subscription_id: str,
        planner: Callable[[Subscription, datetime], ChargePlan],
        *,
        on_session: bool = False,
    ) -> ChargeResult:
        """Plan a charge on fresh state and run it; a race lost before Stripe is retried."""

        def step() -> ChargeResult:
            sub = self.get(community_id, subscription_id)
            now = self._clock.now()
            return self._charging.charge(
                sub, planner(sub, now), actor="api", now=now, on_session=on_session
            )

        result = retrying(step)
        fail_if_declined(result)
        return result

    def activate(
        self, community_id: str, subscription_id: str, payment_method_id: str | None
    ) -> ChargeResult:
        def planner(sub: Subscription, now: datetime) -> ChargePlan:
            method = payment_method_id or sub.payment_method_id
            plan = plan_activation(
                sub,
                now,
                owner_credit=self.owner_credit(community_id, sub.owner_id, sub.currency),
                payment_method_id=payment_method_id,
                current_plan=self._plan(community_id, sub.plan_id),  # archived: 409
            )
            if method:
                self._cards.require(community_id, sub.owner_id, method)
            return plan

        return self.charged_change(community_id, subscription_id, planner)

    def reactivate(
        self,
        community_id: str,
        subscription_id: str,
        *,
        payment_method_id: str | None,
        owner_id: str | None,
        billing_cycle: BillingCycle | None,
        member_ids: Sequence[str] | None,
        on_session: bool = False,
    ) -> ChargeResult:
        """failed_payment -> active: the full period now, a new cycle from now. `on_session`:
        the owner pays on the pay page (ChargeResult.client_secret when the card asks for
        authentication)."""
        owner = self.profile(community_id, owner_id, "owner_id") if owner_id else None
        if member_ids is not None:
            self._members_exist(community_id, member_ids, "member_ids")

        def planner(sub: Subscription, now: datetime) -> ChargePlan:
            billed = owner.id if owner is not None else sub.owner_id
            plan = plan_reactivation(
                sub,
                now,
                owner_credit=self.owner_credit(community_id, billed, sub.currency),
                owner=owner,
                payment_method_id=payment_method_id,
                billing_cycle=billing_cycle,
                member_ids=member_ids,
            )
            self._cards.require(community_id, billed, plan.payment_method_id)
            return plan

        return self.charged_change(community_id, subscription_id, planner, on_session=on_session)

    def change_plan(
        self, community_id: str, subscription_id: str, plan_id: str, effective: str
    ) -> ChargeResult:
        plan = self._plan(community_id, plan_id)
        if effective == "period_end":
            sub = self.transition(
                community_id,
                subscription_id,
                lambda sub, now: change_plan_at_period_end(sub, plan, now),
            )
            return ChargeResult(sub, None)

        def planner(sub: Subscription, now: datetime) -> ChargePlan:
            return plan_change_now(
                sub,
                plan,
                now,
                owner_credit=self.owner_credit(community_id, sub.owner_id, sub.currency),
            )

        return self.charged_change(community_id, subscription_id, planner)

    # --- preview and audit trail ----------------------------------------------------------------
    def preview(self, community_id: str, subscription_id: str, action: str) -> dict[str, Any]:
        """What activate / reactivate / renew would charge now (renew: at the period end)."""
        from chalicelib.services.views import charge_plan_view

        sub = self.get(community_id, subscription_id)
        community = self._communities.get(community_id)
        now = self._clock.now()
        credit = self.owner_credit(community_id, sub.owner_id, sub.currency)
        if action == "activate":
            # What activating would do, with the stored plan's terms (archived: 409 as well).
            current_plan = self._plan(community_id, sub.plan_id)
            plan = plan_activation(sub, now, owner_credit=credit, current_plan=current_plan)
        elif action == "reactivate":
            plan = plan_reactivation(sub, now, owner_credit=credit)
        else:
            period = sub.current_period
            if sub.status != "active" or period is None:
                raise Conflict(f"Only active subscriptions renew; this one is {sub.status}.")
            # The stored plans' latest terms (the name of the plan it renews onto), as the
            # renewal itself reads them.
            plan = plan_renewal(
                sub,
                max(now, period.end),
                owner_credit=credit,
                current_plans=self.stored_plans(community_id, sub),
            )
        fee = application_fee(
            plan.total, community.fee_bps_for_charges(), currency(plan.currency).charge_step
        )
        return charge_plan_view(plan, fee)

    def events(
        self, community_id: str, subscription_id: str, limit: int, cursor: str | None
    ) -> Any:
        if self._subscriptions.find(community_id, subscription_id) is None:
            raise NotFound(f"Subscription {subscription_id} not found.")
        return self._audit.list(community_id, subscription_id, limit, cursor)
