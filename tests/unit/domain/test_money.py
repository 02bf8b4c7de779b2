from __future__ import annotations

import pytest

from chalicelib.domain.money import (
    application_fee,
    credit_to_apply,
    monthly_equivalent,
    prorated_amount,
    round_half_up_div,
)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (0, 7, 0),
        (1, 2, 1),  # exactly half rounds up
        (3, 2, 2),
        (5, 2, 3),  # not banker's rounding
        (149, 100, 1),
        (150, 100, 2),
        (249, 100, 2),
        (250, 100, 3),
        (10**30 + 1, 2, 5 * 10**29 + 1),  # exact for huge integers
    ],
)
def test_round_half_up_div(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_up_div(numerator, denominator) == expected


def test_round_half_up_div_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        round_half_up_div(1, 0)
    with pytest.raises(ValueError):
        round_half_up_div(-1, 2)


DAY = 86_400
THIRTY_DAYS = 30 * DAY


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [
        (30, 3000),
        (20, 2000),  # added on day 10 of a 30-day period
        (15, 1500),
        (1, 100),
        (0, 0),
    ],
)
def test_proration_of_a_30_day_period(days_left: int, expected: int) -> None:
    assert prorated_amount(3000, days_left * DAY, THIRTY_DAYS) == expected


def test_proration_rounds_half_up_per_member() -> None:
    # 999 * 1/2 = 499.5 -> 500
    assert prorated_amount(999, THIRTY_DAYS // 2, THIRTY_DAYS) == 500
    # 1000 * 1/3 = 333.33 -> 333 ; 1000 * 2/3 = 666.67 -> 667
    assert prorated_amount(1000, 10 * DAY, THIRTY_DAYS) == 333
    assert prorated_amount(1000, 20 * DAY, THIRTY_DAYS) == 667
    # clamps outside the period
    assert prorated_amount(1000, -5, THIRTY_DAYS) == 0
    assert prorated_amount(1000, THIRTY_DAYS + 5, THIRTY_DAYS) == 1000


@pytest.mark.parametrize(
    ("total", "bps", "expected"),
    [(10_000, 250, 250), (1_999, 250, 50), (1_998, 250, 50), (1_980, 250, 50), (1_979, 250, 49)],
)
def test_application_fee_rounds_half_up(total: int, bps: int, expected: int) -> None:
    # 1979 * 0.025 = 49.475 -> 49 ; 1980 * 0.025 = 49.5 -> 50
    assert application_fee(total, bps) == expected


def test_application_fee_bounds() -> None:
    assert application_fee(1234, 0) == 0
    assert application_fee(1234, 10_000) == 1234
    with pytest.raises(ValueError):
        application_fee(1234, 10_001)


def test_credit_and_mrr_helpers() -> None:
    assert credit_to_apply(1000, 300) == 300
    assert credit_to_apply(1000, 3000) == 1000
    assert credit_to_apply(0, 3000) == 0
    assert monthly_equivalent(30_000, "year") == 2500
    assert monthly_equivalent(30_006, "year") == 2501  # 2500.5 -> 2501
    assert monthly_equivalent(3000, "month") == 3000
