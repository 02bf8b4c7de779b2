"""Refunds over HTTP when Stripe fails (issue 11 item 3): Stripe down is a 503 with the refund
pending and its amount reserved, never a ledger that says refunded; a lost answer is settled
from what Stripe did (recovery pass, charge.refunded), never sent twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.adapters.dynamodb.payments import payment_key
from chalicelib.jobs.local_runner import run_once
from tests.integration.conftest import TABLE_NAME
from tests.support.localstripe import localstripe_url, stripe_for
from tests.support.moto_clients import moto_client
from tests.support.webhook_flow import Billing, Pending, billing, call

__all__ = ["billing", "localstripe_url"]


def refund(billing: Billing, paid: Pending, body: dict[str, Any]) -> tuple[int, Any]:
    return call(
        billing.env.client, "post", f"/v1/payments/{paid.payment_id}/refunds", paid.key, body
    )


def stripe_refunds(billing: Billing, paid: Pending) -> list[int]:
    client = stripe_for(billing.cutoff.target)
    listed = client.v1.refunds.list(params={"payment_intent": paid.intent_id})
    return sorted(int(r.amount) for r in listed.data)


def stored_item(paid: Pending) -> dict[str, Any]:
    dynamodb = moto_client("dynamodb", region_name="us-east-1")
    key = payment_key(paid.community_id, paid.payment_id)
    item: dict[str, Any] = dynamodb.get_item(TableName=TABLE_NAME, Key=key)["Item"]
    return item


def test_stripe_down_is_a_503_with_the_refund_pending_until_recovery_releases_it(
    billing: Billing,
) -> None:
    paid = billing.paid()
    billing.cutoff.down_next("POST", "/v1/refunds")

    status, body = refund(billing, paid, {"amount": 1000})

    assert status == 503, body
    assert body["error"]["type"] == "unavailable"
    payment = billing.payment(paid)
    assert (payment["status"], payment["amount_refunded"], payment["amount_refund_pending"]) == (
        "succeeded",
        0,
        1000,
    )
    assert stripe_refunds(billing, paid) == []
    assert stored_item(paid)["due_group"]["S"] == "pending_refund"  # the recovery pass finds it
    status, body = refund(billing, paid, {"amount": 2000})  # 2500 paid, 1000 reserved
    assert status == 400, body

    # The scheduler's own pass (sweep of the due index -> queue -> worker) settles it.
    billing.env.clock.advance(timedelta(minutes=6))
    run_once(billing.env.container)
    payment = billing.payment(paid)
    assert (payment["amount_refunded"], payment["amount_refund_pending"]) == (0, 0)
    assert "due_group" not in stored_item(paid)
    assert "payment.refund_failed" in {e["type"] for e in billing.audit(paid)}
    status, body = refund(billing, paid, {})
    assert (status, body["amount"], body["status"]) == (201, 2500, "succeeded")
    assert stripe_refunds(billing, paid) == [2500]
    assert billing.payment(paid)["status"] == "refunded"


def test_a_lost_refund_answer_is_settled_once_by_charge_refunded(billing: Billing) -> None:
    paid = billing.paid()
    billing.cutoff.cut_next("POST", "/v1/refunds")  # Stripe refunds; our side hears nothing

    status, body = refund(billing, paid, {"amount": 1000})

    assert status == 503, body
    assert stripe_refunds(billing, paid) == [1000]
    assert billing.payment(paid)["amount_refund_pending"] == 1000
    status, delivered = billing.deliver(billing.charge_refunded(paid, 1000))
    assert (status, delivered["result"]) == (200, "processed")
    payment = billing.payment(paid)
    assert (payment["status"], payment["amount_refunded"], payment["amount_refund_pending"]) == (
        "partially_refunded",
        1000,
        0,
    )
    scheduled = billing.env.container.scheduled
    later = billing.env.clock.now() + timedelta(minutes=6)
    assert scheduled.recover_pending_refunds(paid.community_id, paid.payment_id, later) == (
        "not_pending"
    )
    assert stripe_refunds(billing, paid) == [1000]
    assert billing.payment(paid)["amount_refunded"] == 1000


def test_a_refund_stripe_is_still_working_on_is_counted_once_with_charge_refunded(
    billing: Billing,
) -> None:
    """Stripe accepts a refund and reports it `pending` (e.g. a connected account's balance
    cannot cover it yet); its `charge.refunded` already counts it in `amount_refunded`. The
    refund stays reserved (pending) until Stripe finishes it, and is never counted twice."""
    paid = billing.paid()
    billing.cutoff.refunds_still_working = True

    status, body = refund(billing, paid, {"amount": 1000})

    assert (status, body["status"]) == (201, "pending"), body
    status, delivered = billing.deliver(billing.charge_refunded(paid, 1000))
    assert (status, delivered["result"]) == (200, "processed")
    payment = billing.payment(paid)
    assert (payment["amount_refunded"], payment["amount_refund_pending"]) == (0, 1000)
    assert refund(billing, paid, {"amount": 1501})[0] == 400  # 2500 paid, 1000 reserved

    billing.cutoff.refunds_still_working = False  # Stripe finishes it
    scheduled = billing.env.container.scheduled
    later = billing.env.clock.now() + timedelta(minutes=6)
    assert scheduled.recover_pending_refunds(paid.community_id, paid.payment_id, later) == (
        "refunds_settled"
    )
    payment = billing.payment(paid)
    assert (payment["status"], payment["amount_refunded"], payment["amount_refund_pending"]) == (
        "partially_refunded",
        1000,
        0,
    )
    assert stripe_refunds(billing, paid) == [1000]
    status, body = refund(billing, paid, {})
    assert (status, body["amount"]) == (201, 1500)
    assert stripe_refunds(billing, paid) == [1000, 1500]
    assert billing.payment(paid)["amount_refunded"] == 2500


def test_a_refund_the_accounts_owner_made_under_our_refund_id_is_not_ours(
    billing: Billing,
) -> None:
    """Our refund of 10.00 never reached Stripe; someone who can refund on the account refunded
    0.01 with our refund's id in its metadata. The recovery pass does not take it for ours:
    the reservation is released, 10.00 is never recorded refunded."""
    paid = billing.paid()
    billing.cutoff.down_next("POST", "/v1/refunds")
    assert refund(billing, paid, {"amount": 1000})[0] == 503
    with billing.env.container.unit_of_work() as uow:
        [ours] = uow.payments.refunds(paid.community_id, paid.payment_id)
    stripe_for(billing.cutoff.target).v1.refunds.create(
        params={"payment_intent": paid.intent_id, "amount": 1, "metadata": {"refund_id": ours.id}}
    )

    billing.env.clock.advance(timedelta(minutes=6))
    run_once(billing.env.container)

    payment = billing.payment(paid)
    assert (payment["amount_refunded"], payment["amount_refund_pending"]) == (0, 0)
    assert "payment.refund_failed" in {e["type"] for e in billing.audit(paid)}
