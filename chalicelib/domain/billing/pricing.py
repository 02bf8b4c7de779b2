"""Pricing: the order lines a charge is made of (plan, activation fees, proration) and how a
credit balance pays part of them. Pure arithmetic on plan terms; no subscription state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chalicelib.domain.billing.charges import PlanSnapshot
from chalicelib.domain.billing.lines import PaymentLine, credit_line
from chalicelib.domain.currencies import currency
from chalicelib.domain.members import ActivationFee, Member
from chalicelib.domain.money import prorated_amount
from chalicelib.domain.periods import Period, seconds_in_period, seconds_left
from chalicelib.domain.plans import BillingCycle


def initial_fee(plan: PlanSnapshot, waive: bool) -> ActivationFee:
    """The activation fee a member joining on `plan` owes."""
    return ActivationFee.waived() if waive else ActivationFee.due(plan.activation_fee)


def fee_for(member: Member, plan: PlanSnapshot, waive: bool) -> ActivationFee:
    """A member's fee at activation: a paid or waived fee stays so, otherwise the plan's."""
    if member.activation_fee.status in ("paid", "waived"):
        return member.activation_fee
    return initial_fee(plan, waive)


def plan_line(plan: PlanSnapshot, cycle: BillingCycle, quantity: int) -> PaymentLine:
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


def fee_lines(plan: PlanSnapshot, members: Sequence[Member]) -> list[PaymentLine]:
    """One line per member whose activation fee is due and not zero."""
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


def rest_of_period(amount: int, period: Period, now: datetime, currency_code: str) -> int:
    """`amount` (a full period's price, or a difference of two) prorated to the part of
    `period` left at `now`, rounded once to the currency's charge step."""
    step = currency(currency_code).charge_step
    return prorated_amount(amount, seconds_left(period, now), seconds_in_period(period), step)


def added_member_line(plan: PlanSnapshot, profile_id: str, unit_amount: int) -> PaymentLine:
    """A member added mid-period pays `unit_amount` (the prorated price) for the rest of it."""
    return PaymentLine(
        kind="proration",
        description=f"{plan.name}: rest of the current period",
        plan_name=plan.name,
        profile_id=profile_id,
        unit_amount=unit_amount,
        quantity=1,
        amount=unit_amount,
    )


def plan_change_line(
    old_plan: PlanSnapshot, new_plan: PlanSnapshot, difference: int, member_count: int
) -> PaymentLine:
    """A dearer plan now: the prorated price difference per member for the rest of the period."""
    return PaymentLine(
        kind="proration",
        description=f"Change from {old_plan.name} to {new_plan.name}, rest of period",
        plan_name=new_plan.name,
        profile_id=None,
        unit_amount=difference,
        quantity=member_count,
        amount=difference * member_count,
    )


def split_subtotal(subtotal: int, credit_balance: int, currency_code: str) -> tuple[int, int, int]:
    """(credit_applied, total, carried_forward) for a charge of `subtotal`: never a total
    between 0 and the currency's Stripe minimum.

    - credit that covers the whole subtotal pays it (total 0);
    - otherwise credit is applied only as far as it leaves the minimum to charge;
    - a subtotal under the minimum that credit does not cover is not charged now: it is
      carried forward whole and the credit is kept (a 7-cent charge cannot be sent either).
    """
    if subtotal < 0 or credit_balance < 0:
        raise ValueError("subtotal and credit balance are never negative")
    minimum = currency(currency_code).minimum_charge
    if credit_balance >= subtotal:
        return subtotal, 0, 0
    if subtotal < minimum:
        return 0, 0, subtotal
    credit = min(credit_balance, subtotal - minimum)
    return credit, subtotal - credit, 0


def with_credit(
    lines: list[PaymentLine], credit_balance: int, currency_code: str
) -> tuple[tuple[PaymentLine, ...], int, int, int, int]:
    """(lines incl. a credit line, subtotal, credit_applied, total, carried_forward) for a
    credit balance in the charge's currency (see `split_subtotal`)."""
    subtotal = sum(line.amount for line in lines)
    credit, total, carried_forward = split_subtotal(subtotal, credit_balance, currency_code)
    all_lines = list(lines)
    if credit:
        all_lines.append(credit_line(credit))
    return tuple(all_lines), subtotal, credit, total, carried_forward
