"""The month lengths the clock can start in (make test-calendar's dates, checked on every run):
a subscription activated on Jan 31, Feb 29 (leap year) or Dec 31 gets the right period, a member
added on day 10 pays round_half_up(unit * seconds_left / seconds_in_period) of *that* period,
and the renewal and retry dates follow the anchor, not 30-day steps."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from chalicelib.domain.charge_planning import plan_add_members, plan_renewal
from chalicelib.domain.errors import Conflict
from chalicelib.domain.members import MemberAddition
from tests.support.clock_start import CALENDAR_STARTS, parse_instant
from tests.unit.domain.factories import active_sub, at, charge_through, make_plan, stored

UNIT = 3000
FEE = 500

# start -> (first period end, days in it, prorated on day 10, second period end)
EXPECTED = {
    # 28-day February: 3000 x 18/28 = 1928.57 -> 1929
    "2026-01-31T12:00:00Z": (at(2026, 2, 28, 12), 28, 1929, at(2026, 3, 31, 12)),
    # leap day anchor keeps the 29th: 3000 x 19/29 = 1965.52 -> 1966
    "2028-02-29T12:00:00Z": (at(2028, 3, 29, 12), 29, 1966, at(2028, 4, 29, 12)),
    # across the year: 3000 x 21/31 = 2032.26 -> 2032
    "2026-12-31T12:00:00Z": (at(2027, 1, 31, 12), 31, 2032, at(2027, 2, 28, 12)),
}


def test_every_calendar_start_has_an_expectation() -> None:
    assert set(EXPECTED) == set(CALENDAR_STARTS)


@pytest.mark.parametrize("start_text", CALENDAR_STARTS)
def test_day_10_proration_and_renewal_follow_the_real_month(start_text: str) -> None:
    start = parse_instant(start_text)
    first_end, days, prorated, second_end = EXPECTED[start_text]
    sub = active_sub(plan=make_plan(month=UNIT, activation_fee=FEE), now=start)
    period = sub.current_period
    assert period is not None
    assert (period.start, period.end) == (start, first_end)
    assert period.end - period.start == timedelta(days=days)

    day_10 = start + timedelta(days=10)
    added = plan_add_members(sub, [MemberAddition("prof_b", "charge")], day_10, owner_credit=0)
    assert [(ln.kind, ln.amount) for ln in added.lines] == [
        ("proration", prorated),
        ("activation_fee", FEE),
    ]
    sub = stored(charge_through(sub, added, day_10).subscription)

    renewal = plan_renewal(sub, first_end, owner_credit=0)
    assert renewal.total == 2 * UNIT
    assert renewal.period is not None
    assert (renewal.period.start, renewal.period.end) == (first_end, second_end)
    renewed = charge_through(sub, renewal, first_end).subscription
    assert renewed.current_period == renewal.period


@pytest.mark.parametrize("start_text", CALENDAR_STARTS)
def test_a_renewal_is_not_due_a_second_before_the_period_ends(start_text: str) -> None:
    start = parse_instant(start_text)
    first_end = EXPECTED[start_text][0]
    sub = active_sub(plan=make_plan(month=UNIT), now=start)
    with pytest.raises(Conflict):
        plan_renewal(sub, first_end - timedelta(seconds=1), owner_credit=0)
    assert plan_renewal(sub, first_end, owner_credit=0).total == UNIT


def test_make_test_calendar_runs_the_same_starts() -> None:
    makefile = (Path(__file__).resolve().parents[3] / "Makefile").read_text()
    [line] = [ln for ln in makefile.splitlines() if ln.startswith("CALENDAR_STARTS :=")]
    assert tuple(line.split(":=", 1)[1].split()) == CALENDAR_STARTS
