"""payment_intent.* events resolve our pending payments through the shared resolution code.

The pending payment is made through the API against localstripe (behind a proxy that loses
Stripe's answer), and the event delivered is the one localstripe itself recorded, signed as
Stripe signs it.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url
from tests.support.webhook_flow import Billing, billing, failed_twin, throttled_once

__all__ = ["billing", "localstripe_url"]


def test_localstripes_own_event_resolves_the_pending_payment_once(billing: Billing) -> None:
    pending = billing.pending()
    assert billing.subscription(pending)["status"] == "inactive"
    status, body = billing.deliver(pending.succeeded_event)
    assert (status, body["result"]) == (200, "processed")
    payment = billing.payment(pending)
    assert payment["status"] == "succeeded"
    assert payment["amount_paid"] == 2500
    assert payment["stripe"]["payment_intent_id"] == pending.intent_id
    subscription = billing.subscription(pending)
    assert subscription["status"] == "active"
    audit = billing.audit(pending)
    assert "webhook" in {e["actor"] for e in audit}
    # Delivered again: a duplicate, with no second effect.
    status, body = billing.deliver(pending.succeeded_event)
    assert (status, body["result"]) == (200, "duplicate")
    assert billing.subscription(pending)["version"] == subscription["version"]
    assert len(billing.audit(pending)) == len(audit)


def test_failed_arriving_after_succeeded_changes_nothing(billing: Billing) -> None:
    pending = billing.pending()
    failed = failed_twin(pending.succeeded_event, se.unique("evt"))
    billing.deliver(pending.succeeded_event)
    before = (billing.subscription(pending), billing.payment(pending))
    status, body = billing.deliver(failed)  # older news, arriving late
    assert (status, body["result"]) == (200, "processed")
    assert (billing.subscription(pending), billing.payment(pending)) == before
    assert before[1]["status"] == "succeeded" and before[0]["status"] == "active"


def test_failed_then_succeeded_in_order_ends_with_the_money_recorded(billing: Billing) -> None:
    pending = billing.pending()
    failed = failed_twin(pending.succeeded_event, se.unique("evt"))
    billing.deliver(failed)
    payment = billing.payment(pending)
    assert payment["status"] == "failed"
    assert payment["failure"]["decline_code"] == "insufficient_funds"
    assert billing.subscription(pending)["status"] == "inactive"
    billing.deliver(pending.succeeded_event)
    # The ledger follows the money: Stripe took it, and since the subscription did not get what
    # it paid for (issue 11 item 2), it was given back automatically.
    late = billing.payment(pending)
    assert (late["status"], late["amount_paid"], late["amount_refunded"]) == (
        "refunded",
        late["total"],
        late["total"],
    )
    assert billing.subscription(pending)["status"] == "inactive"


def test_a_payment_event_naming_another_account_is_ignored(billing: Billing) -> None:
    pending = billing.pending()
    foreign = {**pending.succeeded_event, "id": se.unique("evt"), "account": "acct_nobody"}
    status, body = billing.deliver(foreign)
    assert (status, body["result"]) == (200, "ignored")
    assert billing.payment(pending)["status"] == "pending"


def test_a_payment_intent_without_our_ids_is_ignored(billing: Billing) -> None:
    intent = se.payment_intent(status="succeeded", metadata={"order": "42"})
    status, body = billing.deliver(se.event("payment_intent.succeeded", intent))
    assert (status, body["result"]) == (200, "ignored")


def test_a_throttled_transaction_is_503_and_stripes_redelivery_resolves_it(
    billing: Billing,
) -> None:
    pending = billing.pending()
    with throttled_once(billing.env.container.dynamodb, "TransactWriteItems") as fired:
        status, body = billing.deliver(pending.succeeded_event)
    assert fired == ["TransactWriteItems"]
    assert (status, body["error"]["type"]) == (503, "unavailable")
    assert billing.payment(pending)["status"] == "pending"
    assert stored(billing, pending.succeeded_event["id"])["status"] == "failed"

    status, body = billing.deliver(pending.succeeded_event)  # Stripe retries
    assert (status, body["result"]) == (200, "processed")
    assert billing.payment(pending)["status"] == "succeeded"
    assert billing.subscription(pending)["status"] == "active"
    assert stored(billing, pending.succeeded_event["id"])["status"] == "processed"


def test_a_failed_payment_event_is_replayed_by_the_operator(billing: Billing) -> None:
    pending = billing.pending()
    with throttled_once(billing.env.container.dynamodb, "TransactWriteItems"):
        assert billing.deliver(pending.succeeded_event)[0] == 503
    event_id = pending.succeeded_event["id"]
    response = billing.env.client.http.post(
        f"/v1/webhook-events/{event_id}/replay", headers=billing.env.platform_headers()
    )
    assert response.status_code == 200, response.body
    replayed = json.loads(response.body)
    assert (replayed["status"], replayed["community_id"]) == ("processed", pending.community_id)
    assert billing.subscription(pending)["status"] == "active"
    assert billing.deliver(pending.succeeded_event)[1]["result"] == "duplicate"


def test_reconciliation_resolves_a_payment_whose_event_never_arrived(billing: Billing) -> None:
    from chalicelib.jobs.reconciliation import reconcile

    pending = billing.pending()
    result = reconcile(billing.env.container)
    assert result.events_fed >= 1
    assert billing.payment(pending)["status"] == "succeeded"
    assert billing.subscription(pending)["status"] == "active"
    assert stored(billing, pending.succeeded_event["id"])["status"] == "processed"
    # The webhook Stripe sends afterwards is a duplicate.
    assert billing.deliver(pending.succeeded_event)[1]["result"] == "duplicate"


def stored(billing: Billing, event_id: str) -> dict[str, Any]:
    response = billing.env.client.http.get(
        "/v1/webhook-events?type=payment_intent.succeeded&limit=100",
        headers=billing.env.platform_headers(),
    )
    [event] = [e for e in json.loads(response.body)["data"] if e["id"] == event_id]
    return dict(event)
