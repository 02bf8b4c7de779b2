"""The pay-now page in chromium on the local stack (issue 15): a renewal fails, the owner opens
the link FROM THE "payment failed" EMAIL, types a card into the Stripe Elements stand-in and pays.

One community of its own; its subscriptions all fail their first renewal in one test-clock
advance (the module fixture), so each test starts from a failed_payment subscription and its
owner's "payment failed" email. Emails are read from what SES accepted in the stack's moto
server (`GET /moto-api/data.json`, moto's model dump: `ses.Message` holds every sent email);
the dunning mailer runs in the publisher loop, so they are awaited with a bounded poll.
Stripe's side is read on the stack's localstripe: exactly one new PaymentIntent per link paid.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from infra.local.stack import LocalStack
from tests.browser.conftest import AXE_SOURCE, REPO_ROOT, VIEWPORT, Api

pytestmark = pytest.mark.e2e

GOOD_CARD = "4242424242424242"
DECLINING_LATER = "4000000000000341"
AUTHENTICATION_CARD = "4000002500003155"
FAILED_SUBJECT = "Payment failed for your Family membership"
RECEIVED_SUBJECT = "Payment received: 60.00 USD for Family"
STORIES = ("good", "authentication", "card_action", "two_tabs", "expired", "declined")
MAIL_WAIT_SECONDS = 30.0
MAIL_POLL_SECONDS = 0.25
# Real Stripe.js has handleCardAction (manual confirmation); localstripe's stand-in has not,
# so pay.js falls back to its confirmCardPayment there. Appended to the stand-in, this gives it
# a handleCardAction with Stripe's contract (the 3D Secure step, then `{paymentIntent}` or
# `{error}`; the server confirms) and records, across the page's reload, which one pay.js used.
STRIPE_JS_WITH_HANDLE_CARD_ACTION = """
;(function () {
  const standIn = window.Stripe;
  const record = (name) => {
    const calls = JSON.parse(sessionStorage.getItem("stripe-calls") || "[]");
    sessionStorage.setItem("stripe-calls", JSON.stringify(calls.concat([name])));
  };
  window.Stripe = function (...args) {
    const stripe = standIn(...args);
    const authenticate = stripe.confirmCardPayment;
    stripe.confirmCardPayment = (...given) => {
      record("confirmCardPayment");
      return authenticate(...given);
    };
    stripe.handleCardAction = (clientSecret) => {
      record("handleCardAction");
      return authenticate(clientSecret);
    };
    return stripe;
  };
})();
"""
PAY_LINK = re.compile(r"https?://\S+/pay/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Mail:
    to: list[str]
    subject: str
    body: str


def sent_mails(stack: LocalStack) -> list[Mail]:
    """Every email SES accepted in the stack's moto server, oldest first."""
    request = urllib.request.Request(f"{stack.config.moto_url}/moto-api/data.json")
    with urllib.request.urlopen(request, timeout=30) as response:
        models = json.loads(response.read())
    return [
        Mail(message["destinations"]["ToAddresses"], message["subject"], message["body"])
        for message in models.get("ses", {}).get("Message", [])
    ]


def mails_to(stack: LocalStack, address: str, subject: str, count: int = 1) -> list[Mail]:
    """The emails to `address` with `subject`, once there are `count` of them (the publisher
    loop sends them within a second or two); fails after MAIL_WAIT_SECONDS."""
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while True:
        found = [m for m in sent_mails(stack) if m.to == [address] and m.subject == subject]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, (address, subject, found, sent_mails(stack))
            return found
        time.sleep(MAIL_POLL_SECONDS)


def pay_now_link(mail: Mail) -> str:
    """The pay-now URL an email carries (it must carry exactly one)."""
    [url] = PAY_LINK.findall(mail.body)
    return str(url)


@dataclass
class Failed:
    """A community whose subscriptions (one per story) are in failed_payment."""

    api: Api
    platform: Api
    owners: dict[str, dict[str, Any]]
    subscriptions: dict[str, str]
    stack: LocalStack

    def link(self, story: str) -> str:
        """A new link issued through the API (it invalidates the emailed one)."""
        path = f"/v1/subscriptions/{self.subscriptions[story]}/payment-link"
        return str(self.api.ok("POST", path, {})["url"])

    def failure_email(self, story: str) -> Mail:
        [mail] = mails_to(self.stack, self.owners[story]["email"], FAILED_SUBJECT)
        return mail

    def emailed_link(self, story: str) -> str:
        """The pay-now link in the owner's "payment failed" email."""
        return pay_now_link(self.failure_email(story))

    def subscription(self, story: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.ok("GET", f"/v1/subscriptions/{self.subscriptions[story]}")
        return found


@pytest.fixture(scope="module")
def failed(stack: LocalStack) -> Failed:
    platform = Api(stack, stack.config.platform_api_key)
    created = platform.ok("POST", "/v1/communities", {"name": "Harbour rowing club"})
    api = Api(stack, created["api_key"]["secret"])
    plan = api.ok(
        "POST",
        "/v1/plans",
        {
            "name": "Family",
            "prices": {"month": 3000},
            "retry_schedule_days": [3],
            "failed_payment_grace_days": 14,
        },
    )
    owners: dict[str, dict[str, Any]] = {}
    subscriptions: dict[str, str] = {}
    for index, story in enumerate(STORIES):
        owner = api.customer(f"Ada {story}", f"ada.{story}@example.com", card=GOOD_CARD)
        kid = api.ok(
            "POST",
            "/v1/profiles",
            {"kind": "dependent", "name": f"Kid {index}", "account_holder_id": owner["id"]},
        )
        sub = api.ok(
            "POST",
            "/v1/subscriptions",
            {
                "plan_id": plan["id"],
                "owner_id": owner["id"],
                "member_ids": [owner["id"], kid["id"]],
                "billing_cycle": "month",
                "payment_method_id": owner["card"],
            },
        )
        api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
        declining = api.card(owner["id"], DECLINING_LATER)
        api.ok("PATCH", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": declining})
        owners[story], subscriptions[story] = owner, sub["id"]
    ends = [
        api.ok("GET", f"/v1/subscriptions/{subscriptions[s]}")["current_period"]["end"]
        for s in STORIES
    ]
    platform.ok("POST", "/v1/test-clock/advance", {"to": max(ends)})
    world = Failed(api, platform, owners, {s: subscriptions[s] for s in STORIES}, stack)
    assert {world.subscription(s)["status"] for s in STORIES} == {"failed_payment"}
    for story in STORIES:  # each owner is told once, with the amount, the card and the link
        body = world.failure_email(story).body
        assert f"(subscription {subscriptions[story]})" in body
        assert "Amount: 60.00 USD\n" in body
        assert "Card: Visa ending in 0341\n" in body
        assert f"\nPay now: {stack.config.api_url}/pay/" in body
    return world


@pytest.fixture(scope="module")
def pay_screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("UPDATE_PAY_SCREENSHOTS") == "1":
        target = REPO_ROOT / "docs" / "pay"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return Path(tmp_path_factory.mktemp("pay-screenshots"))


@pytest.fixture
def context(browser: Browser, stack: LocalStack) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 900, "height": VIEWPORT["height"]})
    problems: list[str] = []
    origins = (stack.config.api_url + "/", stack.config.stripe_url + "/")

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on(
            "request",
            lambda r: None if r.url.startswith(origins) else problems.append(f"loaded {r.url}"),
        )

    made.on("page", watch)
    yield made
    made.close()
    # Nothing the CSP refused, no script error, nothing from anywhere but the API and Stripe.
    assert problems == []


def payment_intents(stack: LocalStack) -> list[dict[str, Any]]:
    """Every PaymentIntent on the stack's localstripe."""
    found: list[dict[str, Any]] = []
    after = ""
    while True:
        query = "limit=100" + (f"&starting_after={after}" if after else "")
        request = urllib.request.Request(
            f"{stack.config.stripe_url}/v1/payment_intents?{query}",
            headers={"Authorization": f"Bearer {stack.config.stripe_secret_key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.loads(response.read())
        found += page["data"]
        if not page["has_more"] or not page["data"]:
            return found
        after = page["data"][-1]["id"]


def reactivation_intents(stack: LocalStack, subscription_id: str) -> list[dict[str, Any]]:
    """The PaymentIntents on the stack's localstripe that pay this subscription's link."""
    return [
        intent
        for intent in payment_intents(stack)
        if intent["metadata"].get("subscription_id") == subscription_id
        and intent["metadata"].get("kind") == "reactivation"
    ]


def enter_card(page: Page, number: str) -> None:
    form = page.get_by_role("form", name="Card payment")
    expect(form.get_by_role("button", name="Pay 60.00 USD")).to_be_enabled()
    form.get_by_label("Card number").fill(number)
    form.get_by_label("Card exp month").fill("12")
    form.get_by_label("Card exp year").fill("31")
    form.get_by_label("Card cvc").fill("123")
    form.get_by_label("Card postal code").fill("10001")


def check_accessibility(page: Page) -> None:
    """axe-core in the page (injected over the DevTools protocol, which the CSP does not
    govern): no serious or critical violation."""
    page.evaluate(AXE_SOURCE.read_text(encoding="utf-8"))
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"""
    )
    assert violations == [], json.dumps(violations, indent=1)


def expect_paid(page: Page) -> None:
    expect(page.locator("main[data-state='paid']")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Paid")).to_be_visible()


def test_the_emailed_link_paid_with_4242_makes_the_subscription_active_with_one_charge(
    context: BrowserContext, failed: Failed, stack: LocalStack, pay_screenshots: Path
) -> None:
    owner = failed.owners["good"]
    url = failed.emailed_link("good")
    intents_before = {intent["id"] for intent in payment_intents(stack)}
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_text("Harbour rowing club")).to_be_visible()
    expect(page.get_by_text("Family membership · Ada good, Kid 0")).to_be_visible()
    summary = page.get_by_role("table", name="Order summary")
    expect(summary).to_contain_text("Amount due")
    expect(summary).to_contain_text("60.00 USD")  # two members at 30.00
    check_accessibility(page)
    enter_card(page, GOOD_CARD)
    page.screenshot(path=str(pay_screenshots / "pay-page.png"), full_page=True)
    page.get_by_role("button", name="Pay 60.00 USD").click()
    expect_paid(page)
    check_accessibility(page)
    page.screenshot(path=str(pay_screenshots / "pay-page-paid.png"), full_page=True)

    sub = failed.subscription("good")
    assert sub["status"] == "active" and sub["payment_method"]["last4"] == "4242"
    [new_intent] = [i for i in payment_intents(stack) if i["id"] not in intents_before]
    assert (new_intent["status"], new_intent["amount"]) == ("succeeded", 6000)
    assert new_intent["metadata"]["subscription_id"] == failed.subscriptions["good"]
    [reactivation] = [
        payment
        for payment in failed.api.ok("GET", f"/v1/payments?subscription_id={sub['id']}")["data"]
        if payment["kind"] == "reactivation"
    ]
    assert reactivation["stripe"]["payment_intent_id"] == new_intent["id"]
    [received] = mails_to(stack, owner["email"], RECEIVED_SUBJECT)
    assert "we received your payment of 60.00 USD (Visa ending in 4242)" in received.body
    assert "membership at Harbour rowing club. The membership is active again." in received.body
    assert f"Order summary (payment {reactivation['id']}):\n" in received.body
    assert received.body.endswith("\nTotal: 60.00 USD\n"), received.body
    page.goto(url)  # the emailed link opened again later: "paid", nothing to pay
    expect_paid(page)
    expect(page.get_by_role("form", name="Card payment")).to_have_count(0)
    # One "payment failed" email, one "payment received": nothing sent twice.
    assert sorted(m.subject for m in sent_mails(stack) if m.to == [owner["email"]]) == [
        FAILED_SUBJECT,
        RECEIVED_SUBJECT,
    ]


def test_a_card_needing_authentication_pays_through_the_3d_secure_step(
    context: BrowserContext, failed: Failed, stack: LocalStack, pay_screenshots: Path
) -> None:
    page = context.new_page()
    page.goto(failed.emailed_link("authentication"))
    enter_card(page, AUTHENTICATION_CARD)
    page.get_by_role("button", name="Pay 60.00 USD").click()
    # localstripe's stand-in asks twice: for the card's setup, then for the payment.
    for step in ("setup", "payment"):
        complete = page.get_by_role("button", name="Complete authentication")
        expect(complete).to_be_visible(timeout=30_000)
        if step == "payment":
            page.screenshot(path=str(pay_screenshots / "pay-page-3ds.png"), full_page=True)
        complete.click()
    expect_paid(page)
    assert failed.subscription("authentication")["status"] == "active"
    [intent] = reactivation_intents(stack, failed.subscriptions["authentication"])
    assert intent["status"] == "succeeded"
    mails_to(stack, failed.owners["authentication"]["email"], RECEIVED_SUBJECT)


def test_with_real_stripe_js_the_page_authenticates_through_handle_card_action(
    context: BrowserContext, failed: Failed, stack: LocalStack
) -> None:
    """pay.js calls stripe.handleCardAction whenever Stripe.js has it (real Stripe.js does;
    it needs manual confirmation, whose server side test_payments_stripe_gateway.py checks at
    the request level), never confirmCardPayment, then has the server confirm."""

    def stripe_js_with_handle_card_action(route: Route) -> None:
        stand_in = route.fetch()
        route.fulfill(response=stand_in, body=stand_in.text() + STRIPE_JS_WITH_HANDLE_CARD_ACTION)

    context.route(
        f"{stack.config.stripe_url}/js.stripe.com/v3/**", stripe_js_with_handle_card_action
    )
    page = context.new_page()
    page_calls: list[str] = []
    page.on(
        "request",
        lambda r: (
            page_calls.append(r.url.rsplit("/", 1)[-1])
            if "/pay/" in r.url and r.method == "POST"
            else None
        ),
    )
    page.goto(failed.emailed_link("card_action"))
    enter_card(page, AUTHENTICATION_CARD)
    page.get_by_role("button", name="Pay 60.00 USD").click()
    for _step in ("setup", "payment"):
        complete = page.get_by_role("button", name="Complete authentication")
        expect(complete).to_be_visible(timeout=30_000)
        complete.click()
    expect_paid(page)
    assert json.loads(page.evaluate("sessionStorage.getItem('stripe-calls')")) == [
        "handleCardAction"
    ]
    assert page_calls == ["setup-intent", "pay", "confirm"]
    assert failed.subscription("card_action")["status"] == "active"
    [intent] = reactivation_intents(stack, failed.subscriptions["card_action"])
    assert intent["status"] == "succeeded"


def test_the_link_paid_in_two_tabs_at_once_charges_once(
    context: BrowserContext, failed: Failed, stack: LocalStack
) -> None:
    url = failed.emailed_link("two_tabs")
    tabs = [context.new_page(), context.new_page()]
    for tab in tabs:
        tab.goto(url)
        enter_card(tab, GOOD_CARD)
    buttons = [tab.get_by_role("button", name="Pay 60.00 USD") for tab in tabs]
    for button in buttons:
        button.click(no_wait_after=True)
    for tab in tabs:
        expect(tab.locator("main[data-state='paid'], main[data-state='processing']")).to_be_visible(
            timeout=30_000
        )
        tab.reload()
        expect_paid(tab)
    assert failed.subscription("two_tabs")["status"] == "active"
    assert len(reactivation_intents(stack, failed.subscriptions["two_tabs"])) == 1
    mails_to(stack, failed.owners["two_tabs"]["email"], RECEIVED_SUBJECT)  # one receipt


def test_an_expired_link_emails_a_new_one(
    context: BrowserContext, failed: Failed, stack: LocalStack, pay_screenshots: Path
) -> None:
    old = failed.emailed_link("expired")
    newer = failed.link("expired")  # issuing a new link expires the emailed one
    page = context.new_page()
    page.goto(old)
    expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    check_accessibility(page)
    page.get_by_role("button", name="Email me a new link").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a new link to a••••@example.com")
    page.screenshot(path=str(pay_screenshots / "pay-page-expired.png"), full_page=True)
    [new_link_mail] = mails_to(
        stack, failed.owners["expired"]["email"], "Your new payment link for Harbour rowing club"
    )
    emailed = pay_now_link(new_link_mail)
    assert emailed not in (old, newer)
    page.goto(newer)  # the link the new email replaced
    expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    page.goto(emailed)  # the new email's link is the one that pays
    expect(page.get_by_role("button", name="Pay 60.00 USD")).to_be_enabled()
    assert reactivation_intents(stack, failed.subscriptions["expired"]) == []


def test_a_declined_card_says_why_and_the_link_can_be_paid_with_another(
    context: BrowserContext, failed: Failed, stack: LocalStack
) -> None:
    page = context.new_page()
    page.goto(failed.emailed_link("declined"))
    enter_card(page, DECLINING_LATER)
    page.get_by_role("button", name="Pay 60.00 USD").click()
    expect(page.get_by_role("alert")).to_contain_text("card_declined", timeout=30_000)
    assert failed.subscription("declined")["status"] == "failed_payment"
    enter_card(page, GOOD_CARD)
    page.get_by_role("button", name="Pay 60.00 USD").click()
    expect_paid(page)
    intents = reactivation_intents(stack, failed.subscriptions["declined"])
    assert sorted(i["status"] for i in intents) == ["requires_payment_method", "succeeded"]
    # The decline on the page sent no "payment failed" email (and so no new link, which would
    # have expired this one): the mailer handles the records in order, so once the receipt is
    # out, an email for the decline would be too.
    owner = failed.owners["declined"]["email"]
    mails_to(stack, owner, RECEIVED_SUBJECT)
    assert [m.subject for m in sent_mails(stack) if m.to == [owner]] == [
        FAILED_SUBJECT,
        RECEIVED_SUBJECT,
    ]
