"""Billing-period math (DESIGN.md section 3). All times are timezone-aware UTC.

Periods are counted from an anchor: period k (k >= 1) is `[anchor + (k-1) cycles,
anchor + k cycles)`. Ends are always computed from the anchor, never as "previous end + 1
cycle", so a Jan 31 anchor gives Feb 28/29 and then Mar 31 again (not Mar 28).
Monthly periods keep the anchor day (clamped to the month's length); yearly periods keep
the anchor date (Feb 29 becomes Feb 28 in non-leap years).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain.plans import BillingCycle

_ZERO = timedelta(0)


def ensure_utc(value: datetime, name: str = "now") -> datetime:
    """Refuse naive or non-UTC datetimes: every billing time is aware UTC."""
    if value.tzinfo is None or value.utcoffset() != _ZERO:
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")
    return value


@dataclass(frozen=True)
class Period:
    """A half-open interval [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        ensure_utc(self.start, "start")
        ensure_utc(self.end, "end")
        if self.end <= self.start:
            raise ValueError("a period ends after it starts")

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    @property
    def seconds(self) -> int:
        return seconds_in_period(self)


def add_months(anchor: datetime, months: int) -> datetime:
    """`anchor` moved by `months` calendar months, keeping the anchor day (clamped)."""
    month_index = anchor.year * 12 + (anchor.month - 1) + months
    year, month0 = divmod(month_index, 12)
    month = month0 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def add_cycles(anchor: datetime, cycle: BillingCycle, count: int) -> datetime:
    """`anchor + count cycles` (month: 1 month, year: 12 months, same anchor day)."""
    ensure_utc(anchor, "anchor")
    if cycle == "month":
        return add_months(anchor, count)
    if cycle == "year":
        return add_months(anchor, 12 * count)
    raise ValueError(f"unknown billing cycle {cycle!r}")


def period_bounds(anchor: datetime, cycle: BillingCycle, k: int) -> Period:
    """Period number k (1-based) of a schedule anchored at `anchor`."""
    if k < 1:
        raise ValueError("periods are numbered from 1")
    return Period(add_cycles(anchor, cycle, k - 1), add_cycles(anchor, cycle, k))


def period_containing(
    anchor: datetime, cycle: BillingCycle, moment: datetime
) -> tuple[int, Period]:
    """(k, period k) such that period k contains `moment`; `moment` must be >= anchor."""
    ensure_utc(moment, "moment")
    ensure_utc(anchor, "anchor")
    if moment < anchor:
        raise ValueError("moment is before the anchor")
    months = (moment.year - anchor.year) * 12 + (moment.month - anchor.month)
    step = 12 if cycle == "year" else 1
    k = max(1, months // step)
    while add_cycles(anchor, cycle, k - 1) > moment:
        k -= 1
    while add_cycles(anchor, cycle, k) <= moment:
        k += 1
    return k, period_bounds(anchor, cycle, k)


def seconds_in_period(period: Period) -> int:
    """Whole seconds in the period (periods are whole seconds when anchors are)."""
    return int((period.end - period.start).total_seconds())


def seconds_left(period: Period, now: datetime) -> int:
    """Whole seconds from `now` to the period end, clamped to [0, seconds_in_period]."""
    ensure_utc(now)
    if now <= period.start:
        return seconds_in_period(period)
    if now >= period.end:
        return 0
    return int((period.end - now).total_seconds())
