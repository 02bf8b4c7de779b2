"""Exact money arithmetic: integers in minor units, round half up (DESIGN.md section 3)."""

from __future__ import annotations

from chalicelib.domain.plans import BillingCycle


def round_half_up_div(numerator: int, denominator: int) -> int:
    """round_half_up(numerator / denominator) for non-negative integers, exactly."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator < 0:
        raise ValueError("numerator must not be negative")
    return (2 * numerator + denominator) // (2 * denominator)


def prorated_amount(
    unit_amount: int, seconds_left: int, seconds_in_period: int, step: int = 1
) -> int:
    """round_half_up(unit_amount * seconds_left / seconds_in_period), per member, rounded once
    to a multiple of `step` (the currency's charge step: 10 for three-decimal currencies)."""
    seconds_left = max(0, min(seconds_left, seconds_in_period))
    return round_half_up_div(unit_amount * seconds_left, seconds_in_period * step) * step


def application_fee(total: int, application_fee_bps: int, step: int = 1) -> int:
    """round_half_up(total * application_fee_bps / 10000), rounded once to a multiple of
    `step` (the currency's charge step: 10 for three-decimal currencies)."""
    if not 0 <= application_fee_bps <= 10_000:
        raise ValueError("application_fee_bps must be within 0..10000")
    return round_half_up_div(total * application_fee_bps, 10_000 * step) * step


def credit_to_apply(subtotal: int, credit_balance: int) -> int:
    """How much of a credit balance a charge of `subtotal` spends: never more than either."""
    if subtotal < 0 or credit_balance < 0:
        raise ValueError("subtotal and credit balance are never negative")
    return min(subtotal, credit_balance)


def monthly_equivalent(amount: int, cycle: BillingCycle) -> int:
    """Normalise a price to a month (MRR): yearly / 12, rounded half up."""
    if cycle == "month":
        return amount
    return round_half_up_div(amount, 12)
