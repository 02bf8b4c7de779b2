"""payment_intent.* events resolve our pending payments through the shared resolution code.

The pending payment is made through the API against localstripe (behind a proxy that loses
Stripe's answer), and the event delivered is the one localstripe itself recorded, signed as
Stripe signs it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url
from tests.support.log_capture import EmittedLogs, emitted_logs
from tests.support.webhook_flow import Billing, Pending, billing, failed_twin, ok, throttled_once

__all__ = ["billing", "emitted_logs", "localstripe_url"]


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


def test_what_an_event_changed_is_logged_with_the_events_id(
    billing: Billing, emitted_logs: EmittedLogs
) -> None:
    """From a payment's `state_change` line the on-call engineer finds the Stripe event."""
    pending = billing.pending()
    status, _ = billing.deliver(pending.succeeded_event)
    assert status == 200

    by_webhook = [line for line in emitted_logs.named("state_change") if line["actor"] == "webhook"]
    assert {line["event_type"] for line in by_webhook} >= {"subscription.activated"}
    for line in by_webhook:
        assert line["stripe_event_id"] == pending.succeeded_event["id"]
        assert (line["subscription_id"], line["payment_id"]) == (
            pending.subscription_id,
            pending.payment_id,
        )
    [delivered] = emitted_logs.named("webhook_event")
    assert (delivered["result"], delivered["community_id"]) == ("processed", pending.community_id)


@contextmanager
def dynamodb_requests(client: Any) -> Iterator[Counter[str]]:
    """The DynamoDB operations sent on `client` meanwhile (botocore hook, as the bench counts)."""
    ops: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        ops[model.name] += 1

    client.meta.events.register("before-call.dynamodb.*", count, unique_id="test-count")
    try:
        yield ops
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", unique_id="test-count")


def access(billing: Billing, pending: Pending, profile_id: str) -> tuple[bool, list[str]]:
    path = f"/v1/profiles/{profile_id}/access"
    answer = ok(billing.env.client, "get", path, pending.key)
    return answer["has_access"], answer["subscription_ids"]


def profile_subscriptions(
    billing: Billing, pending: Pending, profile_id: str
) -> set[tuple[str, str, str]]:
    answer = ok(billing.env.client, "get", f"/v1/profiles/{profile_id}", pending.key)
    return {(s["subscription_id"], s["role"], s["status"]) for s in answer["subscriptions"]}


def test_an_activation_with_members_is_two_requests(billing: Billing) -> None:
    """Issue 10's bench goal: two requests. The first, a conditional write of the event
    record alone, is refused (the payment is still pending) and shows the payment and its
    subscription; the second is the money transaction, which carries the few links of a small
    subscription (no link writer after it)."""
    pending = billing.pending(other_members=2)
    members = [m["profile_id"] for m in billing.subscription(pending)["members"]]
    assert len(members) == 3
    assert access(billing, pending, members[1]) == (False, [])

    with dynamodb_requests(billing.env.container.dynamodb) as ops:
        status, body = billing.deliver(pending.succeeded_event)

    assert (status, body["result"]) == (200, "processed")
    assert ops == Counter({"TransactWriteItems": 2})
    sub_id = pending.subscription_id
    for member in members[1:]:
        assert access(billing, pending, member) == (True, [sub_id])
        assert profile_subscriptions(billing, pending, member) == {(sub_id, "member", "active")}
    assert profile_subscriptions(billing, pending, members[0]) == {
        (sub_id, "owner", "active"),
        (sub_id, "member", "active"),
    }


def test_a_failed_transaction_writes_no_link_and_the_redelivery_writes_them(
    billing: Billing,
) -> None:
    pending = billing.pending(other_members=2)
    member = billing.subscription(pending)["members"][2]["profile_id"]
    with throttled_once(billing.env.container.dynamodb, "TransactWriteItems"):
        assert billing.deliver(pending.succeeded_event)[0] == 503
    assert profile_subscriptions(billing, pending, member) == {
        (pending.subscription_id, "member", "inactive")
    }
    assert access(billing, pending, member) == (False, [])

    status, body = billing.deliver(pending.succeeded_event)  # Stripe retries

    assert (status, body["result"]) == (200, "processed")
    assert access(billing, pending, member) == (True, [pending.subscription_id])


def test_failed_arriving_after_succeeded_changes_nothing(billing: Billing) -> None:
    pending = billing.pending()
    failed = failed_twin(pending.succeeded_event, se.unique("evt"))
    billing.deliver(pending.succeeded_event)
    before = (billing.subscription(pending), billing.payment(pending), billing.audit(pending))
    with dynamodb_requests(billing.env.container.dynamodb) as ops:
        status, body = billing.deliver(failed)  # older news, arriving late
    assert (status, body["result"]) == (200, "processed")
    assert ops == Counter({"TransactWriteItems": 1})  # the record, on the payment's condition
    after = (billing.subscription(pending), billing.payment(pending), billing.audit(pending))
    assert after == before
    assert before[1]["status"] == "succeeded" and before[0]["status"] == "active"


def test_news_the_payment_already_records_is_stored_in_one_conditional_write(
    billing: Billing,
) -> None:
    """The usual case: the charge's own answer resolved the payment before Stripe's event
    arrived. The event is stored as processed in one TransactWriteItems (its record, on the
    condition that the payment is settled with this PaymentIntent on this account and its
    subscription waits for nothing), with no read and no change; once more: a duplicate."""
    pending = billing.pending()
    billing.deliver(pending.succeeded_event)
    before = (billing.subscription(pending), billing.payment(pending), billing.audit(pending))
    news = {**pending.succeeded_event, "id": se.unique("evt")}

    with dynamodb_requests(billing.env.container.dynamodb) as ops:
        status, body = billing.deliver(news)
    assert (status, body["result"]) == (200, "processed")
    assert ops == Counter({"TransactWriteItems": 1})
    stored = billing.env.container.webhook_events.get(news["id"])
    assert stored is not None
    assert (stored.status.value, stored.community_id) == ("processed", pending.community_id)
    after = (billing.subscription(pending), billing.payment(pending), billing.audit(pending))
    assert after == before

    with dynamodb_requests(billing.env.container.dynamodb) as ops:
        status, body = billing.deliver(news)
    assert (status, body["result"]) == (200, "duplicate")
    assert ops == Counter({"TransactWriteItems": 1})


def test_news_of_a_settled_payment_on_another_account_is_still_ignored(billing: Billing) -> None:
    """The one-write path holds only on the payment's own account: news from another goes the
    full way and is ignored, as before the payment was settled."""
    pending = billing.pending()
    billing.deliver(pending.succeeded_event)
    before = billing.payment(pending)
    foreign = {**pending.succeeded_event, "id": se.unique("evt"), "account": "acct_nobody"}
    status, body = billing.deliver(foreign)
    assert (status, body["result"]) == (200, "ignored")
    assert billing.payment(pending) == before


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
