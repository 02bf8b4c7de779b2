from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.domain.periods import (
    Period,
    add_cycles,
    period_bounds,
    period_containing,
    seconds_in_period,
    seconds_left,
)
from tests.unit.domain.factories import at


def test_monthly_anchor_on_jan_31_keeps_the_anchor_day_for_14_months() -> None:
    anchor = at(2024, 1, 31, 9, 30)
    ends = [period_bounds(anchor, "month", k).end for k in range(1, 15)]
    assert [e.date().isoformat() for e in ends] == [
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
        "2024-06-30",
        "2024-07-31",
        "2024-08-31",
        "2024-09-30",
        "2024-10-31",
        "2024-11-30",
        "2024-12-31",
        "2025-01-31",
        "2025-02-28",
        "2025-03-31",
    ]
    assert all(e.time() == anchor.time() for e in ends)


def test_period_k_starts_where_period_k_minus_1_ends() -> None:
    anchor = at(2025, 1, 31)
    for k in range(2, 30):
        assert period_bounds(anchor, "month", k).start == period_bounds(anchor, "month", k - 1).end


def test_ends_are_anchor_plus_k_cycles_not_previous_end_plus_one() -> None:
    anchor = at(2025, 1, 30)
    # previous-end arithmetic would drift to Mar 28; anchored arithmetic comes back to the 30th
    assert period_bounds(anchor, "month", 1).end == at(2025, 2, 28)
    assert period_bounds(anchor, "month", 2).end == at(2025, 3, 30)


def test_yearly_feb_29_becomes_feb_28_then_back_to_29_in_leap_years() -> None:
    anchor = at(2024, 2, 29, 12)
    ends = [period_bounds(anchor, "year", k).end for k in range(1, 5)]
    assert ends == [
        at(2025, 2, 28, 12),
        at(2026, 2, 28, 12),
        at(2027, 2, 28, 12),
        at(2028, 2, 29, 12),
    ]


def test_monthly_feb_29_anchor_keeps_the_29th() -> None:
    anchor = at(2024, 2, 29)
    assert period_bounds(anchor, "month", 1).end == at(2024, 3, 29)
    assert period_bounds(anchor, "month", 12).end == at(2025, 2, 28)
    assert period_bounds(anchor, "month", 13).end == at(2025, 3, 29)


def test_period_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        period_bounds(at(2024, 1, 1), "month", 0)


@pytest.mark.parametrize(
    ("moment", "k"),
    [
        (at(2024, 1, 31), 1),
        (at(2024, 2, 28, 23, 59, 59), 1),
        (at(2024, 2, 29), 2),
        (at(2024, 3, 30), 2),
        (at(2024, 3, 31), 3),
        (at(2025, 2, 28), 14),
    ],
)
def test_period_containing_finds_the_half_open_period(moment: datetime, k: int) -> None:
    found_k, period = period_containing(at(2024, 1, 31), "month", moment)
    assert found_k == k
    assert period.contains(moment)
    assert period == period_bounds(at(2024, 1, 31), "month", k)


def test_period_containing_yearly_and_before_anchor() -> None:
    k, period = period_containing(at(2024, 2, 29), "year", at(2026, 3, 1))
    assert k == 3
    assert period == Period(at(2026, 2, 28), at(2027, 2, 28))
    with pytest.raises(ValueError):
        period_containing(at(2024, 2, 29), "year", at(2024, 2, 28))


def test_seconds_helpers() -> None:
    period = Period(at(2026, 4, 1), at(2026, 5, 1))
    assert seconds_in_period(period) == 30 * 86400
    assert seconds_left(period, at(2026, 4, 11)) == 20 * 86400
    assert seconds_left(period, at(2026, 3, 1)) == 30 * 86400
    assert seconds_left(period, at(2026, 5, 2)) == 0
    assert period.seconds == 30 * 86400


def test_naive_or_non_utc_times_are_refused() -> None:
    with pytest.raises(ValueError):
        add_cycles(datetime(2026, 1, 1), "month", 1)
    with pytest.raises(ValueError):
        Period(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))), at(2026, 2, 1))
    with pytest.raises(ValueError):
        Period(at(2026, 2, 1), at(2026, 2, 1))
    assert add_cycles(datetime(2026, 1, 1, tzinfo=UTC), "year", 2) == at(2028, 1, 1)
