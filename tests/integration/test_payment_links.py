"""Pay-now links through the API (issue 15): moto in-process, localstripe, chalice test client."""

from __future__ import annotations

import html
import json
import re
import threading
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.domain.errors import Conflict
from chalicelib.services.payment_links import REQUESTS_PER_TOKEN_PER_MINUTE
from tests.support.atomic_requests import AtomicRequests
from tests.support.billing_api import SENDER, Api, Reply, api_at, billing_env, reply_of
from tests.support.localstripe import localstripe_url, new_card, stripe_for
from tests.support.moto_clients import moto_client

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)  # a 30-day period: Apr 1 -> May 1
MAY = datetime(2026, 5, 1, tzinfo=UTC)


def sent_mail() -> list[Any]:
    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def failed_subscription(api: Api, grace_days: int = 14) -> tuple[dict[str, Any], dict[str, Any]]:
    """(owner, subscription): the renewal on May 1 was declined (card 4000000000000341)."""
    plan = api.plan(
        prices={"month": 3000}, retry_schedule_days=[3], failed_payment_grace_days=grace_days
    )
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    bad = api.card(owner["id"], "4000000000000341")
    api.ok("PATCH", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": bad})
    period_end = datetime.fromisoformat(sub["current_period"]["end"].replace("Z", "+00:00"))
    api.env.clock.advance_to(period_end)
    outcome = api.env.container.scheduled.renew(api.community_id, sub["id"], period_end)
    assert outcome == "renewal_failed"
    return owner, api.ok("GET", f"/v1/subscriptions/{sub['id']}")


def test_issue_answers_the_url_and_min_of_cancel_at_and_7_days(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api, grace_days=14)
    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/payment-link", {})
    assert reply.status == 201, reply.body
    assert set(reply.body) == {"url", "expires_at"}
    assert reply.body["url"].startswith(f"{api.env.settings.public_url}/pay/")
    assert reply.body["expires_at"] == "2026-05-08T00:00:00Z"  # 7 days before the 14-day grace

    other: Api = api_at(APRIL)
    _, short = failed_subscription(other, grace_days=5)
    link = other.ok("POST", f"/v1/subscriptions/{short['id']}/payment-link", {}, 201)
    assert link["expires_at"] == short["cancel_at"] == "2026-05-06T00:00:00Z"


def test_issue_is_409_unless_failed_payment_and_404_for_an_unknown_subscription(
    api_at: Any,
) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan()
    owner = api.customer("Bo")
    sub = api.active(plan, owner)
    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/payment-link", {})
    assert reply.status == 409 and reply.body["error"]["type"] == "conflict"
    reply = api.call("POST", "/v1/subscriptions/sub_nope/payment-link", {})
    assert reply.status == 404 and reply.body["error"]["type"] == "not_found"
    other = api.new()
    _, failed = failed_subscription(other)
    reply = api.call("POST", f"/v1/subscriptions/{failed['id']}/payment-link", {})
    assert reply.status == 404  # another community's subscription


def test_a_new_link_invalidates_the_old_one_in_dynamodb(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    path = f"/v1/subscriptions/{sub['id']}/payment-link"
    first = api.ok("POST", path, {}, 201)["url"].rsplit("/", 1)[1]
    second = api.ok("POST", path, {}, 201)["url"].rsplit("/", 1)[1]
    links = api.env.container.payment_links
    now = api.env.clock.now()
    assert links.open(first, now).state == "expired"
    assert links.open(second, now).state == "payable"
    assert links.open(second, now + timedelta(days=7)).state == "expired"


# --- the page and paying through it (localstripe) ----------------------------------------------
def page(api: Api, token: str) -> Any:
    return api.env.client.http.get(f"/pay/{token}")


def pay_call(api: Api, token: str, action: str, body: Any = None) -> Reply:
    """One of the page's JSON calls, as pay.js makes it (no API key)."""
    response = api.env.client.http.post(
        f"/pay/{token}/{action}",
        headers={"Content-Type": "application/json"},
        body=json.dumps(body or {}),
    )
    return reply_of(response)


def issued_token(api: Api, subscription_id: str) -> str:
    link = api.ok("POST", f"/v1/subscriptions/{subscription_id}/payment-link", {}, 201)
    return str(link["url"]).rsplit("/pay/", 1)[1]


def set_up_card(api: Api, token: str, number: str) -> str:
    """What Stripe.js does on the page: confirm the link's SetupIntent with a new card."""
    secret = pay_call(api, token, "setup-intent").body["client_secret"]
    client = stripe_for(api.stripe_url)
    method_id = new_card(client, number)
    setup_id = secret.split("_secret_")[0]
    intent = client.v1.setup_intents.confirm(setup_id, params={"payment_method": method_id})
    if intent.status == "requires_action":  # 3D Secure at setup: completed by the customer
        intent = client.v1.setup_intents.confirm(setup_id)
    assert intent.status == "succeeded"
    return method_id


def authenticate(api: Api, client_secret: str, success: bool = True) -> None:
    """The customer's 3D Secure step (localstripe's Stripe.js stand-in calls this endpoint)."""
    intent_id = client_secret.split("_secret_")[0]
    form = urllib.parse.urlencode({"client_secret": client_secret, "success": str(success).lower()})
    request = urllib.request.Request(
        f"{api.stripe_url}/v1/payment_intents/{intent_id}/_authenticate",
        data=form.encode(),
        method="POST",
        headers={"Authorization": "Bearer sk_test_x"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def link_intents(api: Api, subscription_id: str) -> list[Any]:
    client = stripe_for(api.stripe_url)
    found, params = [], {"limit": 100}
    while True:
        batch = client.v1.payment_intents.list(params=params)
        found += [
            i
            for i in batch.data
            if i.metadata.to_dict().get("subscription_id") == subscription_id
            and i.metadata.to_dict().get("kind") == "reactivation"
        ]
        if not batch.has_more:
            return found
        params["starting_after"] = batch.data[-1].id


def test_the_page_is_public_html_with_the_order_summary_and_strict_csp(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    owner, sub = failed_subscription(api)
    kid = api.dependent(owner["id"], "Kid")
    assert kid  # a dependent exists in the community, not on this subscription
    token = issued_token(api, sub["id"])
    response = page(api, token)
    assert response.status_code == 200
    headers = {k.lower(): v for k, v in response.headers.items()}
    assert headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    assert f"script-src 'self' {api.stripe_url}" in csp
    assert f"frame-src {api.stripe_url}" in csp
    assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
    body = response.body.decode()
    assert 'data-state="payable"' in body and "Gym" in body and "Gold membership · Ada" in body
    preview = api.ok("GET", f"/v1/subscriptions/{sub['id']}/preview?action=reactivate")
    assert preview["total"] == 3000 and "30.00 USD" in body
    for line in preview["lines"]:
        assert html.escape(line["description"]) in body
    scripts = re.findall(r'<script src="([^"]+)"', body)
    assert scripts == [f"{api.stripe_url}/js.stripe.com/v3/", "../pay-assets/pay.js"]
    assert "<script>" not in body and " style=" not in body and "onclick" not in body
    for asset in ("pay.js", "pay.css", "pico.min.css"):
        served = api.env.client.http.get(f"/pay-assets/{asset}")
        assert served.status_code == 200 and "content-security-policy" in {
            k.lower() for k in served.headers
        }
    assert api.env.client.http.get("/pay-assets/app.py").status_code == 404
    assert page(api, "not-a-real-token-at-all-xxxxxxxxxxxxxxx").status_code == 404


def test_paying_with_4242_charges_once_and_the_link_then_shows_paid(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    api.env.clock.advance(timedelta(hours=5))
    token = issued_token(api, sub["id"])
    card = set_up_card(api, token, "4242424242424242")
    reply = pay_call(api, token, "pay", {"payment_method_id": card})
    assert reply.status == 200 and reply.body["status"] == "paid", reply.body
    paid = api.ok("GET", f"/v1/subscriptions/{sub['id']}")
    assert paid["status"] == "active" and paid["payment_method"]["id"] == card
    assert paid["current_period"]["start"] == "2026-05-01T05:00:00Z"  # a new cycle from now
    [intent] = link_intents(api, sub["id"])
    assert intent.status == "succeeded" and intent.amount == 3000
    assert 'data-state="paid"' in page(api, token).body.decode()
    again = pay_call(api, token, "pay", {"payment_method_id": card})
    assert again.status == 409 and again.body["error"]["type"] == "conflict"
    assert len(link_intents(api, sub["id"])) == 1
    trail = api.ok("GET", f"/v1/subscriptions/{sub['id']}/events?limit=100")["data"]
    [started] = [e for e in trail if e["details"].get("kind") == "reactivation"][:1]
    assert (started["type"], started["actor"]) == ("payment.started", "api")
    assert started["details"]["via"] == "pay_page"  # the member paid, not the operator


def awaiting_authentication(api: Api) -> tuple[dict[str, Any], str, Reply]:
    """(subscription, token, the pay call's answer) after paying with a card that asks for
    authentication (4000002500003155) through a new link."""
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    card = set_up_card(api, token, "4000002500003155")
    reply = pay_call(api, token, "pay", {"payment_method_id": card})
    assert reply.status == 200 and reply.body["status"] == "requires_action", reply.body
    return sub, token, reply


def test_a_card_needing_authentication_goes_through_confirm(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    sub, token, reply = awaiting_authentication(api)
    secret = reply.body["client_secret"]
    assert 'data-state="processing"' in page(api, token).body.decode()
    assert pay_call(api, token, "confirm", {"payment_intent_id": "pi_other"}).status == 400
    authenticate(api, secret)
    done = pay_call(api, token, "confirm", {"payment_intent_id": secret.split("_secret_")[0]})
    assert done.status == 200 and done.body["status"] == "paid", done.body
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "active"
    assert len(link_intents(api, sub["id"])) == 1


def test_a_failed_authentication_is_a_402_and_the_link_stays_payable(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    card = set_up_card(api, token, "4000000000003220")
    secret = pay_call(api, token, "pay", {"payment_method_id": card}).body["client_secret"]
    authenticate(api, secret, success=False)
    failed = pay_call(api, token, "confirm", {"payment_intent_id": secret.split("_secret_")[0]})
    assert failed.status == 402 and failed.body["error"]["type"] == "payment_failed"
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "failed_payment"
    assert 'data-state="payable"' in page(api, token).body.decode()


def test_two_tabs_paying_at_once_make_one_charge(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    cards = [set_up_card(api, token, "4242424242424242") for _ in range(2)]
    service = api.env.container.pay_now
    AtomicRequests(api.env.container.dynamodb)  # moto in-process: one request at a time
    start = threading.Barrier(2)

    def tab(card: str) -> str:
        start.wait()
        try:
            return service.pay(token, card).status
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(tab, cards))
    assert outcomes == ["conflict", "paid"]
    assert len(link_intents(api, sub["id"])) == 1
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "active"


def test_stale_links_charge_nothing_and_show_the_status(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api, grace_days=5)
    token = issued_token(api, sub["id"])
    card = set_up_card(api, token, "4242424242424242")
    api.env.clock.advance_to(datetime(2026, 5, 6, tzinfo=UTC))
    outcome = api.env.container.scheduled.process_failed_payment(
        api.community_id, sub["id"], api.env.clock.now()
    )
    assert outcome == "grace_cancelled"
    assert 'data-state="cancelled"' in page(api, token).body.decode()
    for action, body in (("setup-intent", {}), ("pay", {"payment_method_id": card})):
        assert pay_call(api, token, action, body).status == 409
    assert link_intents(api, sub["id"]) == []


def test_an_expired_link_emails_a_new_one_to_the_address_on_file(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    owner, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    api.env.clock.advance(timedelta(days=7))
    body = page(api, token).body.decode()
    assert 'data-state="expired"' in body and "Email me a new link" in body
    assert pay_call(api, token, "pay", {"payment_method_id": "pm_x"}).status == 409
    sent_before = len(sent_mail())
    typed = pay_call(api, token, "new-link", {"email": "attacker@example.net"})
    assert typed.status == 400  # no address can be given
    reply = pay_call(api, token, "new-link")
    assert reply.status == 200 and reply.body == {"sent_to": "a••••@example.com"}
    [email] = sent_mail()[sent_before:]
    assert email.destinations["ToAddresses"] == [owner["email"]]
    new_url = re.search(r"http\S+/pay/\S+", email.body)
    assert new_url is not None
    new_token = new_url.group(0).rsplit("/pay/", 1)[1]
    assert 'data-state="payable"' in page(api, new_token).body.decode()
    assert pay_call(api, token, "new-link").status == 409  # once per expired link
    assert len(sent_mail()) == sent_before + 1


def test_a_new_link_ses_refused_is_a_503_and_can_be_asked_for_again(api_at: Any) -> None:
    """SES refusing the email (here: the sender is not verified, as in the sandbox) sends
    nothing, so the one resend of the expired link is not used up: once SES takes it, asking
    again emails the link. Before, the 500 had used it up and every later ask was a 409 "a new
    link was already sent", with no link ever sent."""
    api: Api = api_at(APRIL)
    owner, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    api.env.clock.advance(timedelta(days=7))
    ses = moto_client("ses", region_name="us-east-1")
    sent_before = len(sent_mail())
    ses.delete_identity(Identity=SENDER)
    try:
        refused = pay_call(api, token, "new-link")
    finally:
        ses.verify_email_identity(EmailAddress=SENDER)

    assert refused.status == 503, refused.body
    assert refused.body["error"]["type"] == "unavailable"
    assert len(sent_mail()) == sent_before
    again = pay_call(api, token, "new-link")
    assert again.status == 200, again.body
    [email] = sent_mail()[sent_before:]
    assert email.destinations["ToAddresses"] == [owner["email"]]
    new_token = email.body.split("/pay/", 1)[1].split()[0]
    assert 'data-state="payable"' in page(api, new_token).body.decode()
    assert pay_call(api, token, "new-link").status == 409  # still once per expired link


def test_the_new_link_email_says_until_when_in_the_emails_time_format(api_at: Any) -> None:
    """API.md: times in the owner's emails read `February 22, 2026 at 12:00 UTC` (before:
    `15 May 2026, 00:00 UTC`, unlike the other emails)."""
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    api.env.clock.advance(timedelta(days=7))
    sent_before = len(sent_mail())

    assert pay_call(api, token, "new-link").status == 200
    [email] = sent_mail()[sent_before:]
    cancel_at = datetime.fromisoformat(
        api.ok("GET", f"/v1/subscriptions/{sub['id']}")["cancel_at"].replace("Z", "+00:00")
    )
    expires_at = min(cancel_at, api.env.clock.now() + timedelta(days=7))
    assert f"It works until {expires_at.strftime('%B %-d, %Y at %H:%M UTC')}." in email.body


def test_each_token_is_rate_limited_per_minute_with_the_error_envelope(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    other = issued_token(api, sub["id"])
    api.env.clock.advance_to(datetime(2026, 5, 1, 1, 0, tzinfo=UTC))
    for _ in range(REQUESTS_PER_TOKEN_PER_MINUTE):
        assert page(api, token).status_code == 200
    limited = pay_call(api, token, "setup-intent")
    assert limited.status == 429 and limited.body["error"]["type"] == "rate_limited"
    assert page(api, token).status_code == 429
    assert page(api, other).status_code == 200
    api.env.clock.advance(timedelta(minutes=1))
    assert page(api, token).status_code == 200


# --- found by an outside probe (2026-12-02) ----------------------------------------------------


def test_pay_charges_no_card_that_another_customer_holds(api_at: Any) -> None:
    """The card must be one set up through the link (or the owner's own): a card another
    customer holds, of this community or another on the same Stripe account, is refused (400)
    and stays where it is; nothing is charged."""
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    client = stripe_for(api.stripe_url)
    for victim in (api.customer("Vic"), api.new().customer("Val")):
        holder = client.v1.payment_methods.retrieve(victim["card"]).customer

        reply = pay_call(api, token, "pay", {"payment_method_id": victim["card"]})

        assert reply.status == 400, reply
        assert reply.body["error"]["type"] == "invalid_request"
        assert client.v1.payment_methods.retrieve(victim["card"]).customer == holder
    assert link_intents(api, sub["id"]) == []
    path = f"/v1/profiles/{sub['owner_id']}/payment-methods"  # the API's attach alike
    refused = api.call("POST", path, {"stripe_payment_method_id": api.customer("Wes")["card"]})
    assert refused.status == 400, refused.body


def test_the_pages_429_says_when_to_come_back(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    for _ in range(REQUESTS_PER_TOKEN_PER_MINUTE):
        page(api, token)

    limited = page(api, token)

    assert limited.status_code == 429
    wait = int(limited.headers["Retry-After"])
    assert 1 <= wait <= 60  # the allowance is per minute: the rest of this one
    answer = api.env.client.http.post(
        f"/pay/{token}/setup-intent", headers={"Content-Type": "application/json"}, body="{}"
    )
    assert answer.status_code == 429 and 1 <= int(answer.headers["Retry-After"]) <= 60


def test_no_new_link_is_sent_once_grace_has_ended(api_at: Any) -> None:
    """After grace end and before the cancellation runs, a new link would be dead on arrival:
    409, no email, and the one resend is not used up."""
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api, grace_days=5)  # cancel_at 2026-05-06T00:00Z
    token = issued_token(api, sub["id"])
    api.env.clock.advance_to(datetime(2026, 5, 6, 0, 0, 1, tzinfo=UTC))
    assert 'data-state="expired"' in page(api, token).body.decode()
    before = len(sent_mail())

    reply = pay_call(api, token, "new-link")

    assert reply.status == 409, reply.body
    assert len(sent_mail()) == before
    issued = api.call("POST", f"/v1/subscriptions/{sub['id']}/payment-link", {})
    assert issued.status == 409, issued.body  # the operator's link alike


def test_confirm_before_the_authentication_answers_processing(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, token, reply = awaiting_authentication(api)
    intent_id = reply.body["client_secret"].split("_secret_")[0]

    early = pay_call(api, token, "confirm", {"payment_intent_id": intent_id})

    assert (early.status, early.body["status"]) == (200, "processing"), early
    assert api.intent(intent_id).status == "requires_action"  # still the customer's to finish


def test_setup_intent_takes_no_body(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    for body in ("{bad", json.dumps({"x": 1})):
        reply = api.env.client.http.post(
            f"/pay/{token}/setup-intent", headers={"Content-Type": "application/json"}, body=body
        )
        assert reply.status_code == 400, (body, reply.status_code, reply.body)
