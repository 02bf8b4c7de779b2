"""Expected prorated amounts, from DESIGN.md section 3, for tests on a clock that keeps moving.

On the stored test clock (e2e) time runs on with the wall clock between requests, and the API
shows instants in whole seconds, so a test knows the instant of a charge only to the second:
`prorations_charged_at` gives the amounts for the two whole-seconds-left counts that can come out
of an instant within the second after `charged_at`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal


def prorated(unit_amount: int, seconds_left: int, seconds_in_period: int) -> int:
    """round_half_up(unit_amount * seconds_left / seconds_in_period)."""
    exact = Decimal(unit_amount * seconds_left) / Decimal(seconds_in_period)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prorations_charged_at(
    unit_amount: int, period_start: datetime, period_end: datetime, charged_at: datetime
) -> set[int]:
    """The prorated amount for a charge shown as made at `charged_at` (whole seconds): the
    instant lies in [charged_at, charged_at + 1 s), so the whole seconds left (rounded down) are
    `period_end - charged_at`, or one less when the instant was past the second."""
    seconds_in_period = int((period_end - period_start).total_seconds())
    whole_left = int((period_end - charged_at).total_seconds())
    return {prorated(unit_amount, left, seconds_in_period) for left in (whole_left, whole_left - 1)}
