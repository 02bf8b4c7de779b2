from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.billing.lines import PaymentLine, charge_key
from chalicelib.domain.charge_outcomes import begin_charge
from chalicelib.domain.charge_planning import plan_activation, plan_add_members, plan_renewal
from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.domain.payment_reports import IntentClaim, PaymentReport
from chalicelib.domain.payments import (
    PAYMENT_STATUSES,
    SETTLED_FOR,
    BilledTo,
    Payment,
    PaymentFailure,
    PaymentMethodSummary,
    new_payment,
)
from tests.unit.domain.factories import T0, at, new_sub, pay, stored

DECLINE = PaymentFailure("card_declined", "insufficient_funds", "Your card has insufficient funds.")


def pending_payment(credit: int = 0) -> Payment:
    sub = stored(new_sub(members=["prof_a", "prof_b"]))
    return pay(plan_activation(sub, T0, owner_credit=credit), "pay_1", T0)


def test_new_payment_copies_the_charge_plan() -> None:
    payment = pending_payment(credit=1200)
    assert payment.status == "pending"
    assert payment.kind == "activation"
    assert (payment.subtotal, payment.credit_applied, payment.total) == (7000, 1200, 5800)
    assert sum(ln.amount for ln in payment.lines) == payment.total
    assert (payment.amount_paid, payment.amount_refunded) == (0, 0)
    assert payment.period is not None and payment.period.start == T0
    assert payment.charge_key == "sub_1#none#activation#v2"
    assert payment.application_fee_amount == 0  # platform account: no fee


def test_application_fee_only_on_a_connected_account() -> None:
    sub = stored(new_sub())
    charge = plan_activation(sub, T0, owner_credit=0)  # 3500
    billed = BilledTo("prof_owner", "Owner", "o@example.com")
    card = PaymentMethodSummary("card", "visa", "4242")
    on_connect = new_payment(charge, "pay_1", billed, card, "acct_1", 250, T0)
    assert on_connect.application_fee_amount == 88  # 87.5 -> 88
    assert on_connect.stripe.account_id == "acct_1"
    assert new_payment(charge, "pay_2", billed, card, None, 250, T0).application_fee_amount == 0
    with pytest.raises(ValueError):
        new_payment(charge, "pay_3", replace(billed, profile_id="prof_x"), card, None, 0, T0)


def test_success_then_late_failure_changes_nothing() -> None:
    payment = pending_payment()
    succeeded = payment.succeed(at(2026, 1, 1, 0, 1), payment_intent_id="pi_1", charge_id="ch_1")
    assert succeeded.changed and succeeded.previous_status == "pending"
    paid = succeeded.payment
    assert (
        paid.status,
        paid.amount_paid,
        paid.stripe.payment_intent_id,
        paid.stripe.charge_id,
    ) == (
        "succeeded",
        7000,
        "pi_1",
        "ch_1",
    )
    late = paid.fail(DECLINE, at(2026, 1, 1, 0, 2))
    assert not late.changed and late.payment is paid
    assert not paid.succeed(at(2026, 1, 1, 0, 3)).changed


@pytest.mark.parametrize("status", PAYMENT_STATUSES)
def test_settled_for_names_exactly_the_statuses_a_report_leaves_as_they_are(status: str) -> None:
    """The webhook's one-write path stores news without a read where SETTLED_FOR says the
    report changes nothing: it must say so exactly where succeed() and fail() do."""
    payment = replace(pending_payment(), status=status)  # type: ignore[arg-type]
    succeeded = payment.succeed(T0 + timedelta(hours=1), payment_intent_id="pi_1")
    failed = payment.fail(DECLINE, T0 + timedelta(hours=1), payment_intent_id="pi_1")
    assert (not succeeded.changed) is (status in SETTLED_FOR["succeeded"])
    assert (not failed.changed) is (status in SETTLED_FOR["failed"])


def test_failure_records_codes_and_a_later_success_wins() -> None:
    failed = pending_payment().fail(DECLINE, T0, payment_intent_id="pi_1")
    assert failed.changed
    assert failed.payment.status == "failed"
    assert failed.payment.failure == DECLINE
    assert failed.payment.amount_paid == 0
    assert not failed.payment.fail(DECLINE, T0).changed
    # the money moved after all (e.g. authentication completed): the ledger follows Stripe
    late_success = failed.payment.succeed(T0, charge_id="ch_9")
    assert late_success.changed and late_success.payment.status == "succeeded"
    assert late_success.payment.failure is None
    assert late_success.payment.stripe.payment_intent_id == "pi_1"


def test_partial_then_full_refund_and_too_much() -> None:
    paid = pending_payment().succeed(T0).payment
    with pytest.raises(InvalidRequest) as err:
        paid.refund(7001, T0)
    assert err.value.details[0].field == "amount"
    with pytest.raises(InvalidRequest):
        paid.refund(0, T0)
    change, amount = paid.refund(2000, T0)
    assert amount == 2000
    reserved = change.payment
    # Reserved until Stripe answers: the ledger shows only what Stripe refunded.
    assert (reserved.status, reserved.amount_refunded, reserved.amount_refund_pending) == (
        "succeeded",
        0,
        2000,
    )
    assert reserved.refundable_amount == 5000
    partial = reserved.settle_refund(2000, True, T0).payment
    assert (partial.status, partial.amount_refunded, partial.refundable_amount) == (
        "partially_refunded",
        2000,
        5000,
    )
    assert (partial.amount_refund_pending, partial.refund_pending_since) == (0, None)
    change, amount = partial.refund(None, T0)
    assert amount == 5000
    with pytest.raises(InvalidRequest):  # the reservation counts: nothing is left
        change.payment.refund(1, T0)
    done = change.payment.settle_refund(5000, True, T0).payment
    assert (done.status, done.amount_refunded) == ("refunded", 7000)
    with pytest.raises(InvalidRequest) as nothing:  # nothing is left: 400, like "more than is left"
        done.refund(None, T0)
    assert nothing.value.details[0].field == "amount"
    with pytest.raises(Conflict):
        pending_payment().refund(None, T0)


def test_more_than_is_left_names_the_amount_in_the_currencys_units() -> None:
    paid = pending_payment().succeed(T0).payment
    with pytest.raises(InvalidRequest, match=r"Only 70\.00 USD \(7000 in minor units\)"):
        paid.refund(paid.amount_paid + 1, T0)


def test_a_partial_refund_in_a_three_decimal_currency_ends_in_0() -> None:
    """Stripe refuses KWD amounts not ending in 0: such a refund is a 400 naming amount."""
    paid = replace(pending_payment().succeed(T0).payment, currency="kwd")
    with pytest.raises(InvalidRequest) as refused:
        paid.refund(1005, T0)
    assert refused.value.details[0].field == "amount"
    change, amount = paid.refund(1000, T0)
    assert (amount, change.payment.amount_refund_pending) == (1000, 1000)
    assert change.payment.refund(None, T0)[1] == paid.amount_paid - 1000


def test_a_refund_stripe_did_not_make_releases_its_reservation() -> None:
    paid = pending_payment().succeed(T0).payment
    reserved = paid.refund(None, T0)[0].payment
    assert reserved.refundable_amount == 0
    released = reserved.settle_refund(7000, False, T0).payment
    assert (released.status, released.amount_refunded, released.refundable_amount) == (
        "succeeded",
        0,
        7000,
    )
    assert released.refund_pending_since is None


def test_stripes_total_after_the_refund_was_settled_changes_nothing() -> None:
    reserved = pending_payment().succeed(T0).payment.refund(3000, T0)[0].payment
    settled = reserved.settle_refund(3000, True, T0).payment
    assert not settled.record_refunded_total(3000, T0).changed
    dashboard = settled.record_refunded_total(5000, T0).payment  # 2000 more from the dashboard
    assert (dashboard.amount_refunded, dashboard.status) == (5000, "partially_refunded")


def test_stripes_total_shrinks_a_reservation_that_no_longer_fits() -> None:
    reserved = pending_payment().succeed(T0).payment.refund(6000, T0)[0].payment
    reported = reserved.record_refunded_total(7000, T0).payment  # all refunded on the dashboard
    assert (reported.amount_refunded, reported.amount_refund_pending) == (7000, 0)
    assert reported.status == "refunded"
    # Our refund record is still pending: the recovery pass must still look at it.
    assert (reported.pending_refunds, reported.refund_pending_since) == (1, T0)
    settled = reported.settle_refund(6000, True, T0).payment
    assert settled.amount_refunded == 7000
    assert (settled.pending_refunds, settled.refund_pending_since) == (0, None)


def test_two_pending_refunds_keep_the_payment_pending_until_both_are_settled() -> None:
    paid = pending_payment().succeed(T0).payment
    first = paid.refund(1000, T0)[0].payment
    later = T0 + timedelta(minutes=1)
    both = first.refund(2000, later)[0].payment
    assert (both.amount_refund_pending, both.pending_refunds, both.refund_pending_since) == (
        3000,
        2,
        later,
    )
    one = both.settle_refund(1000, False, later).payment
    assert (one.amount_refund_pending, one.pending_refunds, one.refund_pending_since) == (
        2000,
        1,
        later,
    )
    none = one.settle_refund(2000, True, later).payment
    assert (none.amount_refunded, none.pending_refunds, none.refund_pending_since) == (
        2000,
        0,
        None,
    )


def test_refunds_reported_by_stripe_only_move_forward() -> None:
    paid = pending_payment().succeed(T0).payment
    first = paid.record_refunded_total(3000, T0)
    assert first.changed and first.payment.status == "partially_refunded"
    assert not first.payment.record_refunded_total(3000, T0).changed  # duplicate
    assert not first.payment.record_refunded_total(1000, T0).changed  # out of order
    full = first.payment.record_refunded_total(7000, T0)
    assert full.payment.status == "refunded"
    with pytest.raises(InvalidRequest):
        paid.record_refunded_total(9000, T0)
    assert not pending_payment().record_refunded_total(100, T0).changed


def test_dispute_won_goes_back_to_the_previous_status_lost_stays_disputed() -> None:
    reserved = pending_payment().succeed(T0).payment.refund(1000, T0)[0].payment
    partial = reserved.settle_refund(1000, True, T0).payment
    opened = partial.open_dispute(T0)
    assert opened.changed and opened.payment.status == "disputed"
    assert not opened.payment.open_dispute(T0).changed
    with pytest.raises(Conflict):
        opened.payment.refund(None, T0)
    won = opened.payment.close_dispute(True, T0)
    assert won.payment.status == "partially_refunded"
    assert won.payment.dispute_status == "won"
    assert not won.payment.close_dispute(False, T0).changed
    lost = opened.payment.close_dispute(False, T0)
    assert (lost.payment.status, lost.payment.dispute_status) == ("disputed", "lost")
    assert not pending_payment().open_dispute(T0).changed


@pytest.mark.parametrize(("refunded", "status"), [(2000, "partially_refunded"), (7000, "refunded")])
def test_a_refund_stripe_reports_during_a_dispute_counts_when_the_dispute_is_won(
    refunded: int, status: str
) -> None:
    """A refund made just before the dispute whose news comes after it (events arrive out of
    order): the won dispute leaves the status its refunds make it, not the one before."""
    opened = pending_payment().succeed(T0).payment.open_dispute(T0).payment
    reported = opened.record_refunded_total(refunded, T0).payment
    assert (reported.status, reported.amount_refunded) == ("disputed", refunded)
    won = reported.close_dispute(True, T0).payment
    assert (won.status, won.amount_refunded, won.dispute_status) == (status, refunded, "won")


def test_invariants_refuse_amounts_that_do_not_add_up() -> None:
    payment = pending_payment(credit=500)
    with pytest.raises(ValueError):
        replace(payment, total=payment.total + 1)
    with pytest.raises(ValueError):
        replace(payment, credit_applied=0)
    with pytest.raises(ValueError):
        replace(payment, lines=payment.lines[:-1])  # credit line dropped
    with pytest.raises(ValueError):
        replace(payment, amount_paid=payment.total + 1)
    with pytest.raises(ValueError):
        PaymentLine("plan", "x", None, None, 100, 2, 300)
    with pytest.raises(ValueError):
        PaymentLine("plan", "x", None, None, -100, 1, -100)
    with pytest.raises(ValueError):
        PaymentLine("plan", "x", None, None, 100, 0, 0)


def test_charge_key_is_deterministic() -> None:
    start = at(2026, 3, 31)
    assert charge_key("sub_1", "renewal", start, 3) == charge_key("sub_1", "renewal", start, 9)
    assert charge_key("sub_1", "renewal", start, 3) == "sub_1#20260331T000000Z#renewal"
    assert charge_key("sub_1", "proration", start, 3) != charge_key("sub_1", "proration", start, 4)
    assert charge_key("sub_1", "retry", None, 3) == "sub_1#none#retry#v3"


def test_charge_keys_come_from_state_not_from_the_moment_of_planning() -> None:
    """Two workers planning one charge from one stored state at different instants collide."""
    from chalicelib.domain.members import MemberAddition
    from tests.unit.domain.factories import active_sub

    sub = stored(new_sub())
    first = plan_activation(sub, T0, owner_credit=0)
    second = plan_activation(sub, T0 + timedelta(seconds=3), owner_credit=0)
    assert first.charge_key == second.charge_key
    assert first.period != second.period
    active = active_sub()
    adds = [
        plan_add_members(active, [MemberAddition("prof_z")], at(2026, 1, day), owner_credit=0)
        for day in (3, 4)
    ]
    assert adds[0].charge_key == adds[1].charge_key == "sub_1#20260101T000000Z#proration#v4"
    renewals = [plan_renewal(active, at(2026, 2, day), owner_credit=0) for day in (1, 2)]
    assert renewals[0].charge_key == renewals[1].charge_key == "sub_1#20260201T000000Z#renewal"


def test_a_report_changes_nothing_only_on_a_settled_payment_with_its_intent_and_account() -> None:
    """The rule the webhook's one-write path checks in DynamoDB (adapters/dynamodb/payments.py
    `settled_checks`, compared case by case in tests/integration/test_payment_reports.py)."""
    sub = stored(new_sub())
    charge = plan_activation(sub, T0, owner_credit=0)
    pending = pay(charge, "pay_1", T0)
    waiting = begin_charge(sub, charge, "pay_1", T0).subscription
    paid = pending.succeed(T0, payment_intent_id="pi_1").payment
    report = PaymentReport("com_1", "pay_1", sub.id, "succeeded", "pi_1", None)

    assert report.changes_nothing(paid, sub)
    assert replace(report, subscription_id=None).changes_nothing(paid, None)
    assert not report.changes_nothing(None, sub)  # no such payment: the full path says why
    assert not report.changes_nothing(pending, waiting)  # the resolution itself
    assert not report.changes_nothing(paid, waiting)  # a subscription still waiting for it
    assert not report.changes_nothing(paid, None)  # the subscription it names is missing
    # The resolution would record the PaymentIntent, or the event is about another one.
    assert not report.changes_nothing(
        replace(paid, stripe=replace(paid.stripe, payment_intent_id=None)), sub
    )
    assert not replace(report, payment_intent_id="pi_2").changes_nothing(paid, sub)
    # Another Stripe account's event is ignored, not processed.
    assert not replace(report, account_id="acct_1").changes_nothing(paid, sub)
    connected = replace(paid, stripe=replace(paid.stripe, account_id="acct_1"))
    assert replace(report, account_id="acct_1").changes_nothing(connected, sub)
    # A failure reported after the success changes nothing; a success after a failure does.
    assert replace(report, outcome="failed").changes_nothing(paid, sub)
    failed = pending.fail(DECLINE, T0, payment_intent_id="pi_1").payment
    assert not report.changes_nothing(failed, sub)


def connected_payment() -> Payment:
    """A pending payment of 3500 usd on acct_1 with an application fee of 88."""
    charge = plan_activation(stored(new_sub()), T0, owner_credit=0)
    billed = BilledTo("prof_owner", "Owner", "o@example.com")
    return new_payment(charge, "pay_1", billed, None, "acct_1", 250, T0)


def test_a_payment_intent_counts_for_a_payment_only_if_it_is_the_payments() -> None:
    """docs/rules/money.md "What a Stripe event may claim"."""
    payment = connected_payment()
    asked = IntentClaim("pi_owner", "acct_1", 3500, "usd", 88, made_by_a_platform=True)
    assert asked.refusal(payment) is None  # no intent recorded yet: what we asked counts
    assert IntentClaim("pi_owner", "acct_1", 3500, "USD").refusal(payment) is None
    for claim in (
        replace(asked, account_id=None),
        replace(asked, account_id="acct_2"),
        replace(asked, amount=3499),
        replace(asked, amount=None),
        replace(asked, currency="eur"),
        replace(asked, application_fee_amount=0),  # the owner's own: Stripe shows null, 0
        replace(asked, application_fee_amount=87),
        replace(asked, made_by_a_platform=False),  # the account's own: Stripe shows null
    ):
        assert claim.refusal(payment) is not None, claim
    recorded = replace(payment, stripe=replace(payment.stripe, payment_intent_id="pi_ours"))
    assert replace(asked, payment_intent_id="pi_ours").refusal(recorded) is None
    assert "not payment pay_1's (pi_ours)" in (asked.refusal(recorded) or "")


def test_news_of_another_payment_intent_never_moves_the_payment() -> None:
    payment = pending_payment().fail(DECLINE, T0, payment_intent_id="pi_ours").payment
    assert not payment.succeed(T0, payment_intent_id="pi_owner").changed
    assert payment.succeed(T0, payment_intent_id="pi_ours").changed
    assert payment.succeed(T0).changed  # our own settlement, naming no intent
    pending = replace(payment, status="pending", failure=None)
    assert not pending.fail(DECLINE, T0, payment_intent_id="pi_owner").changed
