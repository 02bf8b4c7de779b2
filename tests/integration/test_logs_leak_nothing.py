"""What the logs and metrics hold after real flows (docs/rules/logs.md): ids, never credentials,
card data, request bodies or personal data. moto in-process, localstripe, the chalice client."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.services.api_keys import hash_key
from tests.integration.conftest import PLATFORM_KEY
from tests.integration.test_payment_links import (
    failed_subscription,
    issued_token,
    page,
    pay_call,
    set_up_card,
)
from tests.support import stripe_events as se
from tests.support.billing_api import SENDER, Api, api_at, billing_env
from tests.support.localstripe import localstripe_url
from tests.support.log_capture import EmittedLogs, emitted_logs
from tests.support.moto_clients import moto_client
from tests.support.receiver import Receiver
from tests.support.webhook_flow import throttled_once

__all__ = ["api_at", "billing_env", "emitted_logs", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)
WEBHOOK_SECRET = "whsec_integration"  # moto_app_env's STRIPE_WEBHOOK_SECRET


def deliver(api: Api, body: bytes, headers: dict[str, str]) -> int:
    return int(api.env.client.http.post("/webhooks/stripe", body=body, headers=headers).status_code)


def test_no_credential_card_or_personal_data_reaches_a_log_line_or_metric(
    api_at: Any, emitted_logs: EmittedLogs
) -> None:
    api: Api = api_at(APRIL)
    secrets = {
        "community key": api.key,
        "platform key": PLATFORM_KEY,
        "Stripe secret key": "sk_test_integration",  # moto_app_env's STRIPE_SECRET_KEY
        "Stripe webhook secret": WEBHOOK_SECRET,
    }
    second_key = api.call(
        "POST", f"/v1/communities/{api.community_id}/api-keys", {}, key=PLATFORM_KEY
    )
    assert second_key.status == 201, second_key.body
    secrets["second community key"] = second_key.body["secret"]
    receiver = Receiver().up()
    try:
        endpoint = api.ok(
            "POST", "/v1/webhook-endpoints", {"url": receiver.url, "enabled_events": ["*"]}, 201
        )
    finally:
        receiver.down()
    secrets["webhook endpoint secret"] = endpoint["secret"]
    secrets["webhook endpoint URL"] = endpoint["url"]  # a platform may put a token in it
    owner, sub = failed_subscription(api)  # signup, card, activation, a declined renewal
    setup = api.ok("POST", f"/v1/profiles/{owner['id']}/setup-intents", {}, 201)
    secrets["profile SetupIntent client_secret"] = setup["client_secret"]

    api.env.clock.advance(timedelta(hours=5))
    token = issued_token(api, sub["id"])
    secrets["pay-link token"] = token
    assert page(api, token).status_code == 200
    card = set_up_card(api, token, "4242424242424242")
    paid = pay_call(api, token, "pay", {"payment_method_id": card})
    assert paid.status == 200, paid.body
    [payment] = [p for p in api.payments(sub["id"]) if p["status"] == "succeeded"][-1:]
    api.ok("POST", f"/v1/payments/{payment['id']}/refunds", {"amount": 500}, 201)

    intent = se.payment_intent(
        status="succeeded", intent_id="pi_logs_probe", amount=3000, metadata={}
    )
    event = se.event("payment_intent.succeeded", intent)
    body = se.body_of(event)
    assert deliver(api, body, se.signed_headers(body, WEBHOOK_SECRET)) == 200
    assert deliver(api, body, se.signed_headers(body, "whsec_not_ours")) == 400
    malformed = b'{"id": "evt_x", "card": "4242424242424242"'
    assert deliver(api, malformed, se.signed_headers(malformed, WEBHOOK_SECRET)) == 400
    wrong_key = "sk_live_presented_by_someone_else"
    assert api.call("GET", "/v1/plans", key=wrong_key).status == 401
    secrets["a wrong key presented"] = wrong_key

    text = emitted_logs.text()
    assert emitted_logs.lines(), "the flows logged nothing: the capture is broken"
    for name, secret in secrets.items():
        assert secret not in text, name
        assert hash_key(secret) not in text, f"{name} (hashed)"
    for personal in (owner["email"], owner["name"], "4242424242424242", "Bearer "):
        assert personal not in text, personal
    assert "_secret_" not in text  # no client_secret of any SetupIntent or PaymentIntent
    assert json.dumps(event)[:80] not in text  # not Stripe's payload


def test_every_change_on_the_audit_trail_logs_one_state_change_line_with_its_ids(
    api_at: Any, emitted_logs: EmittedLogs
) -> None:
    """Activation, a declined renewal (the scheduler), the pay page and a refund: the on-call
    engineer finds each in the logs by community, subscription and payment."""
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    api.env.clock.advance(timedelta(hours=5))
    token = issued_token(api, sub["id"])
    card = set_up_card(api, token, "4242424242424242")
    assert pay_call(api, token, "pay", {"payment_method_id": card}).status == 200
    [first, *_] = api.payments(sub["id"])
    refund = api.ok("POST", f"/v1/payments/{first['id']}/refunds", {"amount": 500}, 201)

    trail = api.ok("GET", f"/v1/subscriptions/{sub['id']}/events?limit=100")["data"]
    logged = emitted_logs.named("state_change")
    assert sorted(line["event_type"] for line in logged) == sorted(e["type"] for e in trail)
    for line in logged:
        assert (line["community_id"], line["subscription_id"]) == (api.community_id, sub["id"])
    by_type = {line["event_type"]: line for line in logged}
    renewal_failed = by_type["subscription.renewal_failed"]
    assert (renewal_failed["from_status"], renewal_failed["to_status"]) == (
        "active",
        "failed_payment",
    )
    assert renewal_failed["actor"] == "scheduler" and renewal_failed["payment_id"]
    reactivated = by_type["subscription.reactivated"]
    assert reactivated["payment_id"] and reactivated["request_id"]
    refunded = by_type["payment.refunded"]
    assert (refunded["payment_id"], refunded["refund_id"], refunded["amount"]) == (
        first["id"],
        refund["id"],
        500,
    )


def test_a_refused_webhook_logs_why_and_never_its_body_or_signature(
    api_at: Any, emitted_logs: EmittedLogs
) -> None:
    """A rotated or wrong signing secret answers Stripe 400 on every event: the logs say so."""
    api: Api = api_at(APRIL)
    intent = se.payment_intent(status="succeeded", intent_id="pi_refused_probe", metadata={})
    body = se.body_of(se.event("payment_intent.succeeded", intent))
    wrong = se.signed_headers(body, "whsec_rotated_away")
    assert deliver(api, body, wrong) == 400
    malformed = b'{"id": "evt_cut_short", "object": "event"'
    assert deliver(api, malformed, se.signed_headers(malformed, WEBHOOK_SECRET)) == 400

    unsigned, cut_short = emitted_logs.named("webhook_rejected")
    assert unsigned["reason"].startswith("The signature does not verify")
    assert cut_short["reason"] == "The body is not valid JSON."
    assert "WebhookRejected" in "".join(emitted_logs.metric_lines())
    text = emitted_logs.text()
    assert "pi_refused_probe" not in text and "evt_cut_short" not in text
    assert wrong["Stripe-Signature"].split("v1=")[1] not in text

    assert deliver(api, body, se.signed_headers(body, WEBHOOK_SECRET)) == 200
    [ignored] = emitted_logs.named("webhook_event")
    assert ignored["result"] == "ignored" and ignored["error"]  # why it was not applied


def test_a_busy_table_on_the_pay_page_is_the_pages_503_and_a_logged_warning(
    api_at: Any, emitted_logs: EmittedLogs
) -> None:
    """Before: DynamoDB throttling past botocore's retries reached Chalice, which answered the
    member a bare JSON 500 and logged the traceback without the request's id; the JSON routes
    answer the same throttling 503."""
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    api.env.clock.advance(timedelta(hours=5))
    token = issued_token(api, sub["id"])

    with throttled_once(api.env.container.dynamodb, "GetItem") as fired:
        busy = page(api, token)

    assert fired == ["GetItem"]
    assert busy.status_code == 503
    assert busy.headers["Content-Type"].startswith("text/html")
    assert "Please try again" in busy.body.decode()
    [warning] = emitted_logs.named("dependency_unavailable")
    assert warning["request_id"] and token not in emitted_logs.text()
    assert not [line for line in emitted_logs.lines() if line["level"] == "ERROR"]
    assert 'data-state="payable"' in page(api, token).body.decode()  # once DynamoDB answers


def test_issued_and_revoked_credentials_and_endpoints_are_logged_by_id(
    api_at: Any, emitted_logs: EmittedLogs
) -> None:
    """Who can call the API or receive the events changed: the auditor finds each by id."""
    api: Api = api_at(APRIL)
    path = f"/v1/communities/{api.community_id}/api-keys"
    fee = api.call(
        "PATCH",
        f"/v1/communities/{api.community_id}",
        {"application_fee_bps": 150},
        key=PLATFORM_KEY,
    )
    assert fee.status == 200, fee.body
    issued = api.call("POST", path, {}, key=PLATFORM_KEY).body
    assert api.call("DELETE", f"{path}/{issued['id']}", key=PLATFORM_KEY).status == 204
    receiver = Receiver().up()
    try:
        endpoint = api.ok(
            "POST", "/v1/webhook-endpoints", {"url": receiver.url, "enabled_events": ["*"]}, 201
        )
    finally:
        receiver.down()
    endpoint_path = f"/v1/webhook-endpoints/{endpoint['id']}"
    api.ok("PATCH", endpoint_path, {"status": "disabled"})
    assert api.call("DELETE", endpoint_path).status == 204

    changes = [
        (line["action"], line["community_id"], line.get("key_id") or line.get("endpoint_id"))
        for line in emitted_logs.named("config_change")
    ]
    assert changes[0][:2] == ("community_created", api.community_id)
    assert api.key.startswith(f"mbk_{changes[0][2]}_")  # the first key, by its id
    assert changes[1:] == [
        ("community_updated", api.community_id, None),
        ("api_key_issued", api.community_id, issued["id"]),
        ("api_key_revoked", api.community_id, issued["id"]),
        ("webhook_endpoint_created", api.community_id, endpoint["id"]),
        ("webhook_endpoint_updated", api.community_id, endpoint["id"]),
        ("webhook_endpoint_deleted", api.community_id, endpoint["id"]),
    ]
    updates = [line for line in emitted_logs.named("config_change") if "changed" in line]
    fee_line, endpoint_line = updates
    assert (fee_line["changed"], fee_line["application_fee_bps"]) == (["application_fee_bps"], 150)
    assert (endpoint_line["changed"], endpoint_line["status"]) == (["status"], "disabled")
    text = emitted_logs.text()
    assert issued["secret"] not in text and endpoint["secret"] not in text
    assert endpoint["url"] not in text


def test_an_email_ses_refuses_is_logged_by_profile_and_code_never_by_address(
    api_at: Any, emitted_logs: EmittedLogs
) -> None:
    """SES's refusal message names addresses (the sandbox lists every recipient it refused;
    moto names the sender): the logged traceback keeps SES's code only."""
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 3000})
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    member = api.customer("Grace", card=None)
    ses = moto_client("ses", region_name="us-east-1")
    ses.delete_identity(Identity=SENDER)
    try:
        body = {"members": [{"profile_id": member["id"]}], "send_welcome_email": True}
        added = api.call("POST", f"/v1/subscriptions/{sub['id']}/members", body)
    finally:
        ses.verify_email_identity(EmailAddress=SENDER)

    assert added.status in (200, 201), added.body
    [failed] = emitted_logs.named("email_failed")
    assert failed["profile_id"] == member["id"]
    assert "MessageRejected" in failed["exception"]
    text = emitted_logs.text()
    for address in (SENDER, member["email"], owner["email"]):
        assert address not in text, address
