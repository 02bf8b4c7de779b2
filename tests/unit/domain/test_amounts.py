"""Issue 11, amounts Stripe would refuse: plan-change rounding (item 9), free plans (item 10),
currencies (item 5) and minimum charge amounts (item 4), on the pure domain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.billing.charges import plan_snapshot
from chalicelib.domain.billing.pricing import split_subtotal
from chalicelib.domain.charge_outcomes import settle_without_stripe
from chalicelib.domain.charge_planning import (
    plan_add_members,
    plan_change_now,
    plan_renewal,
    plan_retry,
)
from chalicelib.domain.currencies import (
    CURRENCIES,
    currency,
    ensure_chargeable_amount,
    round_to_step,
    supported_currency,
)
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.periods import seconds_in_period, seconds_left
from tests.unit.domain.factories import active_sub, at, charge_through, make_plan, stored

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
        assert [ln for ln in charge.lines if ln.kind == "proration"] == []
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


# --- item 4: never a charge below the currency's minimum ------------------------------------


def test_credit_is_applied_less_so_the_total_reaches_the_minimum() -> None:
    sub = active_sub(plan=make_plan(month=1000, activation_fee=0), now=APRIL_1)
    renewal = plan_renewal(sub, at(2026, 5, 1), owner_credit=995)
    assert (renewal.subtotal, renewal.credit_applied, renewal.total) == (1000, 950, 50)
    assert renewal.carried_forward == 0
    # credit that pays it all is spent in full: nothing goes to Stripe
    paid = plan_renewal(sub, at(2026, 5, 1), owner_credit=1000)
    assert (paid.credit_applied, paid.total, paid.needs_stripe) == (1000, 0, False)


def test_a_sub_minimum_proration_adds_the_member_now_and_carries_the_amount() -> None:
    sub = active_sub(plan=make_plan(month=1000, activation_fee=0), now=APRIL_1)
    twelve_hours_left = at(2026, 4, 30, 12)
    charge = plan_add_members(
        sub, [MemberAddition("prof_b", "charge")], twelve_hours_left, owner_credit=0
    )
    assert (charge.subtotal, charge.total, charge.carried_forward) == (17, 0, 17)
    assert charge.credit_applied == 0
    assert not charge.needs_stripe and not charge.needs_payment
    outcome = settle_without_stripe(sub, charge, twelve_hours_left)
    added = stored(outcome.subscription)
    assert added.member("prof_b") is not None  # a member now
    assert [(c.amount, c.incurred_at) for c in added.carried] == [(17, twelve_hours_left)]

    # the next charge carries it as its own line, once
    renewal = plan_renewal(added, at(2026, 5, 1), owner_credit=0)
    carried = [ln for ln in renewal.lines if ln.kind == "carried"]
    assert [(ln.amount, ln.quantity) for ln in carried] == [(17, 1)]
    assert "2026-04-30" in carried[0].description
    assert renewal.subtotal == 2 * 1000 + 17 and renewal.total == 2017
    # a failed renewal keeps it; the retry charges it again; success clears it
    failed = stored(charge_through(added, renewal, at(2026, 5, 1), succeed=False).subscription)
    assert [c.amount for c in failed.carried] == [17]
    retry = plan_retry(failed, failed.next_retry_at or at(2026, 5, 4), owner_credit=0)
    assert [ln.amount for ln in retry.lines if ln.kind == "carried"] == [17]
    paid = stored(
        charge_through(failed, retry, failed.next_retry_at or at(2026, 5, 4)).subscription
    )
    assert paid.carried == ()
    assert paid.status == "active"


def test_a_price_under_the_minimum_accumulates_until_it_can_be_charged() -> None:
    sub = active_sub(plan=make_plan(month=30, year=None, activation_fee=0), now=APRIL_1)
    assert sub.carried and sub.carried[0].amount == 30  # the activation itself was carried
    may = plan_renewal(sub, at(2026, 5, 1), owner_credit=0)
    # 30 carried + 30 for May = 60 >= 50: charged now
    assert (may.subtotal, may.total, may.carried_forward) == (60, 60, 0)
    renewed = stored(charge_through(sub, may, at(2026, 5, 1)).subscription)
    assert renewed.carried == ()
    assert renewed.require_period().start == at(2026, 5, 1)


def test_credit_does_not_half_pay_a_sub_minimum_subtotal() -> None:
    sub = active_sub(plan=make_plan(month=1000, activation_fee=0), now=APRIL_1)
    charge = plan_add_members(
        sub, [MemberAddition("prof_b", "charge")], at(2026, 4, 30, 12), owner_credit=10
    )
    # 17 due, 10 of credit: 7 cannot be charged; the credit is kept and all 17 carried
    assert (charge.credit_applied, charge.total, charge.carried_forward) == (0, 0, 17)
    covered = plan_add_members(
        sub, [MemberAddition("prof_b", "charge")], at(2026, 4, 30, 12), owner_credit=17
    )
    assert (covered.credit_applied, covered.total, covered.carried_forward) == (17, 0, 0)


def test_yen_minimum_is_fifty_yen() -> None:
    sub = active_sub(plan=make_plan(month=3000, year=None, activation_fee=0, currency="jpy"))
    renewal = plan_renewal(sub, at(2026, 2, 1), owner_credit=2990)
    assert (renewal.credit_applied, renewal.total) == (2950, 50)


@settings(max_examples=400, deadline=None)
@given(
    subtotal=st.integers(min_value=0, max_value=5_000),
    balance=st.integers(min_value=0, max_value=5_000),
    code=st.sampled_from(["usd", "jpy", "gbp", "kwd", "mxn"]),
)
def test_no_total_is_ever_between_zero_and_the_minimum(
    subtotal: int, balance: int, code: str
) -> None:
    subtotal = round_to_step(subtotal, code)
    balance = round_to_step(balance, code)
    minimum = currency(code).minimum_charge
    credit, total, carried = split_subtotal(subtotal, balance, code)
    assert credit + total + carried == subtotal
    assert 0 <= credit <= balance
    assert total == 0 or total >= minimum
    assert carried == 0 or (carried < minimum and credit == 0 and total == 0)
    assert total % currency(code).charge_step == 0
    if balance >= subtotal:
        assert (credit, total, carried) == (subtotal, 0, 0)


def test_a_charge_plan_under_the_minimum_cannot_even_be_built() -> None:
    from dataclasses import replace

    sub = active_sub(plan=make_plan(month=1000, activation_fee=0), now=APRIL_1)
    renewal = plan_renewal(sub, at(2026, 5, 1), owner_credit=0)
    with pytest.raises(ValueError, match="minimum"):
        replace(renewal, credit_applied=995, total=5)
    with pytest.raises(ValueError):
        replace(renewal, total=999)  # the parts no longer add up to the subtotal


def test_application_fees_in_three_decimal_currencies_end_in_zero() -> None:
    from chalicelib.domain.money import application_fee
    from chalicelib.domain.payments import application_fee_for

    assert application_fee(12340, 250, step=10) == 310  # 308.5 -> rounded once to 310
    assert application_fee(12340, 250) == 309  # two-decimal: 308.5 -> 309
    assert application_fee_for(12340, "acct_1", 250, "kwd") == 310
    assert application_fee_for(12340, "acct_1", 250, "usd") == 309
    assert application_fee_for(12340, None, 250, "kwd") == 0
