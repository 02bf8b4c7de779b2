"""Issue 11, amounts Stripe would refuse: plan-change rounding (item 9), free plans (item 10),
currencies (item 5) and minimum charge amounts (item 4), on the pure domain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.billing.charges import plan_snapshot
from chalicelib.domain.billing.planning import plan_change_now
from chalicelib.domain.currencies import (
    CURRENCIES,
    currency,
    ensure_chargeable_amount,
    round_to_step,
    supported_currency,
)
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.periods import seconds_in_period, seconds_left
from tests.unit.domain.factories import active_sub, at, make_plan

APRIL_1 = at(2026, 4, 1)
APRIL_SECONDS = 30 * 86_400


def round_half_up(numerator: int, denominator: int) -> int:
    """The reference: Python's exact fractions, rounded half up."""
    from fractions import Fraction

    value = Fraction(numerator, denominator)
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


# --- item 9: a plan change now charges the prorated difference, rounded once ----------------


@settings(max_examples=300, deadline=None)
@given(
    old_price=st.integers(min_value=0, max_value=100_000),
    new_price=st.integers(min_value=0, max_value=100_000),
    seconds_in=st.integers(min_value=0, max_value=APRIL_SECONDS - 1),
    members=st.integers(min_value=1, max_value=3),
)
def test_plan_change_now_charges_the_prorated_difference_rounded_once(
    old_price: int, new_price: int, seconds_in: int, members: int
) -> None:
    if old_price == new_price:
        return
    sub = active_sub(
        plan=make_plan(month=old_price, activation_fee=0),
        members=tuple(f"prof_{i}" for i in range(members)),
        now=APRIL_1,
    )
    now = APRIL_1 + timedelta(seconds=seconds_in)
    period = sub.require_period()
    left, total = seconds_left(period, now), seconds_in_period(period)
    charge = plan_change_now(
        sub, make_plan("plan_new", month=new_price, activation_fee=0), now, owner_credit=0
    )
    per_member = round_half_up(abs(new_price - old_price) * left, total)
    if new_price > old_price:
        charged = [ln for ln in charge.lines if ln.kind == "proration"]
        if per_member == 0:
            assert charged == []
        else:
            assert [(ln.unit_amount, ln.quantity) for ln in charged] == [(per_member, members)]
        assert charge.credit_granted == 0
    else:
        assert charge.subtotal == 0
        assert charge.credit_granted == per_member * members


def test_plan_change_rounding_example_that_was_one_cent_off() -> None:
    # 10 days left of 30, 1 -> 2: prorating both prices and subtracting gave
    # round(0.667) - round(0.333) = 1 - 0 = 1; the difference rounded once is round(0.333) = 0.
    sub = active_sub(plan=make_plan(month=1, activation_fee=0), now=APRIL_1)
    charge = plan_change_now(
        sub, make_plan("plan_new", month=2, activation_fee=0), at(2026, 4, 21), owner_credit=0
    )
    assert [ln for ln in charge.lines if ln.kind == "proration"] == []


# --- item 10: free means nothing is ever charged -------------------------------------------


def test_a_plan_with_zero_prices_and_an_activation_fee_is_not_free() -> None:
    with_fee = make_plan(month=0, year=0, activation_fee=5000)
    assert with_fee.free is False
    assert plan_snapshot(with_fee).free is False
    truly_free = make_plan(month=0, year=0, activation_fee=0)
    assert truly_free.free is True
    assert plan_snapshot(truly_free).free is True


# --- item 5: currencies ----------------------------------------------------------------------


def test_only_currencies_stripe_charges_in_are_accepted() -> None:
    with pytest.raises(InvalidRequest):
        supported_currency("zzz")
    with pytest.raises(InvalidRequest):
        supported_currency("USD")  # Stripe takes lowercase codes
    assert supported_currency("jpy").exponent == 0
    assert supported_currency("usd").exponent == 2
    assert supported_currency("kwd").exponent == 3
    assert all(c.minimum_charge > 0 for c in CURRENCIES.values())
    assert all(c.minimum_charge % c.charge_step == 0 for c in CURRENCIES.values())


def test_amounts_print_with_the_currency_decimals() -> None:
    assert currency("usd").format(17) == "0.17 USD"
    assert currency("jpy").format(500) == "500 JPY"
    assert currency("kwd").format(1250) == "1.250 KWD"
    assert currency("eur").format(-250) == "-2.50 EUR"


def test_three_decimal_amounts_end_in_zero() -> None:
    ensure_chargeable_amount("kwd", 1250, "prices.month")
    with pytest.raises(InvalidRequest):
        ensure_chargeable_amount("kwd", 1255, "prices.month")
    ensure_chargeable_amount("usd", 1255, "prices.month")
    assert [round_to_step(a, "kwd") for a in (0, 4, 5, 14, 15, 1254, 1255)] == [
        0,
        0,
        10,
        10,
        20,
        1250,
        1260,
    ]
    assert round_to_step(1255, "usd") == 1255


def test_prorations_in_a_three_decimal_currency_end_in_zero() -> None:
    sub = active_sub(plan=make_plan(month=3330, activation_fee=0, currency="kwd"), now=APRIL_1)
    dearer = make_plan("plan_new", month=9990, activation_fee=0, currency="kwd")
    for day in range(2, 30):
        charge = plan_change_now(sub, dearer, at(2026, 4, day, 7), owner_credit=0)
        assert all(ln.amount % 10 == 0 for ln in charge.lines)
        assert charge.total % 10 == 0
