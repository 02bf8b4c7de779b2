"""The ledger equals Stripe, after the whole e2e session (this test runs last).

Every PaymentIntent localstripe holds with our metadata is compared, one by one, with the
payment it names (read from the stack's DynamoDB), and every payment we recorded with an
intent is found on Stripe: same amount and currency, succeeded <=> paid, failed <=> failed,
the same amount refunded, at most one successful charge per payment and per charge key.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections import Counter
from typing import Any

import pytest

from infra.local.stack import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.ledger_last]

COLLECTED = {"succeeded", "partially_refunded", "refunded", "disputed"}
FAILED_INTENT = {"requires_payment_method", "requires_action", "canceled"}


def _stripe(stack: LocalStack, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    request = urllib.request.Request(
        f"{stack.config.stripe_url}{path}{query}",
        headers={"Authorization": f"Bearer {stack.config.stripe_secret_key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _all_intents(stack: LocalStack) -> list[dict[str, Any]]:
    intents: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    while True:
        page = _stripe(stack, "/v1/payment_intents", **params)
        intents += page["data"]
        if not page["has_more"]:
            return intents
        params["starting_after"] = page["data"][-1]["id"]


def _our_payments(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """Every payment item (a test-only Scan of the stack's table)."""
    import boto3

    from chalicelib.adapters.dynamodb.items import from_item

    env = stack.app_env()
    client = boto3.session.Session(region_name="us-east-1").client(
        "dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"]
    )
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {
        "TableName": env["BILLING_TABLE_NAME"],
        "FilterExpression": "#t = :payment",
        "ExpressionAttributeNames": {"#t": "type"},
        "ExpressionAttributeValues": {":payment": {"S": "payment"}},
    }
    while True:
        page = client.scan(**kwargs)
        for raw in page.get("Items", []):
            item = from_item(raw)
            found[item["id"]] = item
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _settled(stack: LocalStack) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Wait (briefly) until no payment is pending: webhooks may still be on their way."""
    deadline = time.monotonic() + 15
    while True:
        payments = _our_payments(stack)
        pending = [p for p in payments.values() if p["status"] == "pending"]
        if not pending or time.monotonic() > deadline:
            return _all_intents(stack), payments
        time.sleep(0.5)


def test_the_ledger_equals_stripe_one_payment_intent_at_a_time(stack: LocalStack) -> None:
    intents, payments = _settled(stack)
    ours = [i for i in intents if (i.get("metadata") or {}).get("payment_id")]
    assert ours, "the e2e session made no charge at all"
    succeeded_per_payment: Counter[str] = Counter()
    problems: list[str] = []
    for intent in ours:
        payment_id = intent["metadata"]["payment_id"]
        payment = payments.get(payment_id)
        if payment is None:
            problems.append(f"{intent['id']}: no payment {payment_id} in the ledger")
            continue
        where = f"{payment_id} / {intent['id']}"
        if intent["metadata"].get("community_id") != payment["community_id"]:
            problems.append(f"{where}: community differs")
        if (intent["amount"], intent["currency"]) != (payment["total"], payment["currency"]):
            problems.append(f"{where}: amount {intent['amount']} != total {payment['total']}")
        known = payment["stripe"].get("payment_intent_id")
        if known not in (None, intent["id"]):
            problems.append(f"{where}: the ledger names another intent {known}")
        if intent["status"] == "succeeded":
            succeeded_per_payment[payment_id] += 1
            if payment["status"] not in COLLECTED or payment["amount_paid"] != intent["amount"]:
                problems.append(f"{where}: Stripe succeeded, ledger {payment['status']}")
            charge = intent["latest_charge"]
            charge = charge if isinstance(charge, dict) else _stripe(stack, f"/v1/charges/{charge}")
            if charge["amount_refunded"] != payment["amount_refunded"]:
                problems.append(
                    f"{where}: refunded {charge['amount_refunded']} on Stripe, "
                    f"{payment['amount_refunded']} in the ledger"
                )
            if payment["stripe"].get("charge_id") not in (None, charge["id"]):
                problems.append(f"{where}: charge differs")
        elif intent["status"] in FAILED_INTENT:
            if payment["status"] != "failed":
                problems.append(f"{where}: Stripe {intent['status']}, ledger {payment['status']}")
        else:
            problems.append(f"{where}: intent still {intent['status']}")
    assert problems == []
    assert [p for p, n in succeeded_per_payment.items() if n > 1] == []

    # And the other way round: every payment that went to Stripe is there, as recorded.
    by_id = {i["id"]: i for i in intents}
    paid_keys: Counter[str] = Counter()
    for payment in payments.values():
        intent_id = payment["stripe"].get("payment_intent_id")
        if payment["status"] in COLLECTED:
            paid_keys[payment["charge_key"]] += 1
            if payment["total"] > 0:
                assert intent_id in by_id, f"{payment['id']} paid without a Stripe charge"
        if intent_id is not None:
            assert by_id[intent_id]["metadata"]["payment_id"] == payment["id"]
        assert payment["status"] != "pending", f"{payment['id']} left pending"
    assert [key for key, n in paid_keys.items() if n > 1] == []
