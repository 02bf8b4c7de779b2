"""A payment event's one-write path: the ConditionChecks of adapters/dynamodb/payments.py
(`settled_checks`) pass exactly where the domain's `PaymentReport.changes_nothing` says the
report changes nothing, over every payment status, both outcomes, the PaymentIntent recorded or
not, each pairing of accounts, and the subscription waiting, settled or missing; and a refusal
shows the payment and subscription as stored (`ReturnValuesOnConditionCheckFailure: ALL_OLD`)
when both checks refused."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Literal

import pytest

from chalicelib.domain.charge_outcomes import begin_charge
from chalicelib.domain.charge_planning import plan_activation
from chalicelib.domain.errors import ConcurrentChange
from chalicelib.domain.payment_reports import PaymentReport
from chalicelib.domain.payments import PAYMENT_STATUSES, Payment, PaymentStatus
from chalicelib.domain.subscriptions import Subscription
from tests.integration.conftest import Env
from tests.unit.domain.factories import T0, new_sub, pay, stored

INTENTS = ("pi_reported", "pi_other", None)  # what the payment records
ACCOUNTS = (None, "acct_1")
SUBSCRIPTIONS = ("waiting", "settled", "missing")


def _stored_pair(
    n: int, status: PaymentStatus, intent: str | None, account: str | None
) -> tuple[Payment, Subscription, Subscription]:
    """Payment n (status, intent, account) and its subscription, waiting for it and not."""
    sub = replace(stored(new_sub()), id=f"sub_{n}")
    charge = plan_activation(sub, T0, owner_credit=0)
    payment = pay(charge, f"pay_{n}", T0)
    payment = replace(
        payment,
        subscription_id=sub.id,
        status=status,
        stripe=replace(payment.stripe, payment_intent_id=intent, account_id=account),
    )
    waiting = begin_charge(sub, charge, payment.id, T0).subscription
    return payment, waiting, sub


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
@pytest.mark.parametrize("status", PAYMENT_STATUSES)
def test_the_checks_refuse_exactly_where_the_domain_says_a_report_changes_something(
    env: Env, outcome: Literal["succeeded", "failed"], status: PaymentStatus
) -> None:
    cases = itertools.product(INTENTS, ACCOUNTS, ACCOUNTS, SUBSCRIPTIONS)
    for n, (intent, stored_account, reported_account, sub_state) in enumerate(cases):
        payment, waiting, settled = _stored_pair(n, status, intent, stored_account)
        sub = {"waiting": waiting, "settled": settled, "missing": None}[sub_state]
        with env.container.unit_of_work() as uow:
            uow.payments.add(payment)
            if sub is not None:
                uow.subscriptions.add(sub)
            uow.commit()
        report = PaymentReport(
            "com_1", payment.id, settled.id, outcome, "pi_reported", reported_account
        )
        as_stored = (replace(payment, revision=1), sub and replace(sub, version=1))
        expected = report.changes_nothing(*as_stored)

        with env.container.unit_of_work() as uow:
            uow.payments.expect_settled(report)
            try:
                uow.commit()
                passed = True
            except ConcurrentChange:
                passed = False
            seen = uow.payments.seen_by_refused_checks()

        case = (outcome, status, intent, stored_account, reported_account, sub_state)
        assert passed is expected, case
        payment_refused = not report.changes_nothing(as_stored[0], settled)
        if not passed and payment_refused and sub_state == "waiting":
            assert seen == as_stored, case
        else:
            assert seen is None, case
        stored_now = env.container.payments.find_payment("com_1", payment.id)
        assert stored_now == as_stored[0], case  # a check writes nothing
