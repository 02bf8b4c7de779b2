"""The pay-now page in chromium on the local stack (issue 15): a renewal fails, the owner opens
the link (issued through the API), types a card into the Stripe Elements stand-in and pays.

One community of its own; its subscriptions all fail their first renewal in one test-clock
advance (the module fixture), so each test starts from a failed_payment subscription. Stripe's
side is read on the stack's localstripe: exactly one new PaymentIntent per link paid.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from infra.local.stack import LocalStack
from tests.browser.conftest import REPO_ROOT, VIEWPORT, Api

pytestmark = pytest.mark.e2e

GOOD_CARD = "4242424242424242"
DECLINING_LATER = "4000000000000341"
AUTHENTICATION_CARD = "4000002500003155"
STORIES = ("good", "authentication", "two_tabs", "expired")


@dataclass
class Failed:
    """A community whose subscriptions (one per story) are in failed_payment."""

    api: Api
    platform: Api
    owners: dict[str, dict[str, Any]]
    subscriptions: dict[str, str]

    def link(self, story: str) -> str:
        path = f"/v1/subscriptions/{self.subscriptions[story]}/payment-link"
        return str(self.api.ok("POST", path, {})["url"])

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
    world = Failed(api, platform, owners, {s: subscriptions[s] for s in STORIES})
    assert {world.subscription(s)["status"] for s in STORIES} == {"failed_payment"}
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


def reactivation_intents(stack: LocalStack, subscription_id: str) -> list[dict[str, Any]]:
    """The PaymentIntents on the stack's localstripe that pay this subscription's link."""
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
        found += [
            intent
            for intent in page["data"]
            if intent["metadata"].get("subscription_id") == subscription_id
            and intent["metadata"].get("kind") == "reactivation"
        ]
        if not page["has_more"] or not page["data"]:
            return found
        after = page["data"][-1]["id"]


def enter_card(page: Page, number: str) -> None:
    form = page.get_by_role("form", name="Card payment")
    expect(form.get_by_role("button", name="Pay 60.00 USD")).to_be_enabled()
    form.get_by_label("Card number").fill(number)
    form.get_by_label("Card exp month").fill("12")
    form.get_by_label("Card exp year").fill("31")
    form.get_by_label("Card cvc").fill("123")
    form.get_by_label("Card postal code").fill("10001")


def expect_paid(page: Page) -> None:
    expect(page.locator("main[data-state='paid']")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Paid")).to_be_visible()


def test_pay_with_4242_makes_the_subscription_active_with_one_charge(
    context: BrowserContext, failed: Failed, stack: LocalStack, pay_screenshots: Path
) -> None:
    url = failed.link("good")
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_text("Harbour rowing club")).to_be_visible()
    expect(page.get_by_text("Family membership · Ada good, Kid 0")).to_be_visible()
    summary = page.get_by_role("table", name="Order summary")
    expect(summary).to_contain_text("Amount due")
    expect(summary).to_contain_text("60.00 USD")  # two members at 30.00
    enter_card(page, GOOD_CARD)
    page.screenshot(path=str(pay_screenshots / "pay-page.png"), full_page=True)
    page.get_by_role("button", name="Pay 60.00 USD").click()
    expect_paid(page)
    page.screenshot(path=str(pay_screenshots / "pay-page-paid.png"), full_page=True)

    sub = failed.subscription("good")
    assert sub["status"] == "active" and sub["payment_method"]["last4"] == "4242"
    [intent] = reactivation_intents(stack, failed.subscriptions["good"])
    assert (intent["status"], intent["amount"]) == ("succeeded", 6000)
    page.goto(url)  # opened again later: shows "paid", offers nothing to pay
    expect_paid(page)
    expect(page.get_by_role("form", name="Card payment")).to_have_count(0)


def test_a_card_needing_authentication_pays_through_the_3d_secure_step(
    context: BrowserContext, failed: Failed, stack: LocalStack, pay_screenshots: Path
) -> None:
    page = context.new_page()
    page.goto(failed.link("authentication"))
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


def test_the_link_paid_in_two_tabs_at_once_charges_once(
    context: BrowserContext, failed: Failed, stack: LocalStack
) -> None:
    url = failed.link("two_tabs")
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


def test_an_expired_link_emails_a_new_one(
    context: BrowserContext, failed: Failed, stack: LocalStack, pay_screenshots: Path
) -> None:
    old = failed.link("expired")
    newer = failed.link("expired")  # issuing a new link expires the older one
    page = context.new_page()
    page.goto(old)
    expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    page.get_by_role("button", name="Email me a new link").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a new link to a••••@example.com")
    page.screenshot(path=str(pay_screenshots / "pay-page-expired.png"), full_page=True)
    page.goto(newer)  # the link the new email replaced
    expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    assert reactivation_intents(stack, failed.subscriptions["expired"]) == []
