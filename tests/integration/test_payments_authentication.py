"""Cards that need authentication, on localstripe (issue 11 item 2): card 4000002500003155
confirmed off-session is `requires_action`. The renewal is recorded failed and its PaymentIntent
canceled; a success that still arrives is refunded automatically, exactly once."""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Any

from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url, new_card, stripe_for
from tests.support.webhook_flow import Billing, Pending, billing, call, ok

__all__ = ["billing", "localstripe_url"]

NEEDS_AUTHENTICATION = "4000002500003155"


def renewal_needing_authentication(billing: Billing) -> tuple[Pending, dict[str, Any]]:
    """An active subscription whose card now needs authentication, renewed by the scheduler."""
    paid = billing.paid()
    client, key = billing.env.client, paid.key
    sub = billing.subscription(paid)
    method_id = new_card(stripe_for(billing.cutoff.target), NEEDS_AUTHENTICATION)
    path = f"/v1/profiles/{sub['owner_id']}/payment-methods"
    ok(client, "post", path, key, {"stripe_payment_method_id": method_id})
    status, body = call(
        client, "patch", f"/v1/subscriptions/{sub['id']}", key, {"payment_method_id": method_id}
    )
    assert status == 200, body
    period_end = se_time(sub["current_period"]["end"])
    billing.env.clock.advance_to(period_end)
    outcome = billing.env.container.scheduled.renew(paid.community_id, sub["id"], period_end)
    assert outcome == "renewal_failed"
    payments = ok(client, "get", f"/v1/payments?subscription_id={sub['id']}&kind=renewal", key)
    [renewal] = payments["data"]
    return paid, renewal


def se_time(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def authenticate(stripe_url: str, intent_id: str) -> int:
    """The customer completes the authentication (localstripe's stand-in for Stripe's page)."""
    intent = stripe_for(stripe_url).v1.payment_intents.retrieve(intent_id)
    data = urllib.parse.urlencode({"client_secret": intent.client_secret, "success": "true"})
    request = urllib.request.Request(
        f"{stripe_url}/v1/payment_intents/{intent_id}/_authenticate",
        data=data.encode(),
        headers={"Authorization": "Bearer sk_test_x"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_renewal_fails_and_its_payment_intent_is_canceled(billing: Billing) -> None:
    paid, renewal = renewal_needing_authentication(billing)

    assert renewal["status"] == "failed"
    assert renewal["failure"]["code"] == "authentication_required"
    intent_id = renewal["stripe"]["payment_intent_id"]
    intent = stripe_for(billing.cutoff.target).v1.payment_intents.retrieve(intent_id)
    assert intent.status == "canceled"
    assert authenticate(billing.cutoff.target, intent_id) == 400  # too late to pay it
    assert billing.subscription(paid)["status"] == "failed_payment"


def test_a_success_after_the_recorded_failure_is_refunded_once(billing: Billing) -> None:
    billing.cutoff.down_next("POST", "/v1/payment_intents/pi_")  # the cancel meets Stripe down
    paid, renewal = renewal_needing_authentication(billing)
    intent_id = renewal["stripe"]["payment_intent_id"]
    stripe = stripe_for(billing.cutoff.target)
    assert stripe.v1.payment_intents.retrieve(intent_id).status == "requires_action"

    assert authenticate(billing.cutoff.target, intent_id) == 200
    intent = stripe.v1.payment_intents.retrieve(intent_id).to_dict()
    assert intent["status"] == "succeeded"
    event = se.event("payment_intent.succeeded", intent)
    status, delivered = billing.deliver(event)
    assert (status, delivered["result"]) == (200, "processed")

    key = paid.key
    late = ok(billing.env.client, "get", f"/v1/payments/{renewal['id']}", key)
    assert (late["status"], late["amount_paid"], late["amount_refunded"]) == (
        "refunded",
        renewal["total"],
        renewal["total"],
    )
    refunds = stripe.v1.refunds.list(params={"payment_intent": intent_id}).data
    assert [int(r.amount) for r in refunds] == [renewal["total"]]
    assert billing.subscription(paid)["status"] == "failed_payment"
    types = [e["type"] for e in billing.audit(paid)]
    assert {"payment.succeeded_late", "payment.refund_started", "payment.refunded"} <= set(types)
    # The same event again (a redelivery under another id): no second refund.
    again = se.event("payment_intent.succeeded", intent)
    assert billing.deliver(again)[0] == 200
    refunds = stripe.v1.refunds.list(params={"payment_intent": intent_id}).data
    assert len(refunds) == 1
