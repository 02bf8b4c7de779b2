"""Exact money arithmetic: integers in minor units, round half up (DESIGN.md section 3)."""

from __future__ import annotations


def round_half_up_div(numerator: int, denominator: int) -> int:
    """round_half_up(numerator / denominator) for non-negative integers, exactly."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator < 0:
        raise ValueError("numerator must not be negative")
    return (2 * numerator + denominator) // (2 * denominator)


def prorated_amount(unit_amount: int, seconds_left: int, seconds_in_period: int) -> int:
    """round_half_up(unit_amount * seconds_left / seconds_in_period), per member."""
    seconds_left = max(0, min(seconds_left, seconds_in_period))
    return round_half_up_div(unit_amount * seconds_left, seconds_in_period)


def application_fee(total: int, application_fee_bps: int) -> int:
    """round_half_up(total * application_fee_bps / 10000)."""
    return round_half_up_div(total * application_fee_bps, 10_000)
