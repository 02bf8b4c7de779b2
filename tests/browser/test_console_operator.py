"""What an operator's console must get right beyond the stories (docs/rules/console.md):
input it cannot read, lists longer than a page, answers lost on the way, a refused action tried
again, a key revoked mid-session, money in other currencies, a phone's screen.

A community of its own (set up through the API, so each test is short), so the stories' counts
and filters never see these subscriptions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Request, Route, expect

from infra.local.stack import LocalStack
from tests.browser.conftest import Api, Console, _console

pytestmark = pytest.mark.e2e

GOOD_CARD = "4242424242424242"
PHONE_WIDTH = 375


@pytest.fixture(scope="module")
def own_api(stack: LocalStack) -> Api:
    platform = Api(stack, stack.config.platform_api_key)
    community = platform.ok("POST", "/v1/communities", {"name": "Quay climbing"})
    return Api(stack, community["api_key"]["secret"])


@pytest.fixture(scope="module")
def own_console(
    browser: Browser, stack: LocalStack, screenshot_dir: Path, own_api: Api
) -> Iterator[Console]:
    for signed_in in _console(browser, stack, screenshot_dir):
        signed_in.sign_in(own_api.key)
        yield signed_in


@pytest.fixture(scope="module")
def plan(own_api: Api) -> dict[str, Any]:
    created: dict[str, Any] = own_api.ok(
        "POST", "/v1/plans", {"name": "Bouldering", "prices": {"month": 1000}}
    )
    return created


def active_subscription(api: Api, plan: dict[str, Any], name: str) -> dict[str, Any]:
    """An active subscription of `name` and one dependent, paid with a good card."""
    owner = api.customer(name, f"{name.split()[0].lower()}@example.com", GOOD_CARD)
    dependent = api.ok(
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": f"{name} Jr", "account_holder_id": owner["id"]},
    )
    sub = api.ok(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": plan["id"],
            "owner_id": owner["id"],
            "member_ids": [owner["id"], dependent["id"]],
            "billing_cycle": "month",
            "payment_method_id": owner["card"],
        },
    )
    activated: dict[str, Any] = api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    activated["dependent_id"] = dependent["id"]
    return activated


def test_a_refund_amount_the_console_cannot_read_is_refused_before_anything_is_sent(
    own_console: Console, own_api: Api, plan: dict[str, Any]
) -> None:
    # "2,50" once went out as {"amount": null} (NaN in JSON), which refunds all that is left,
    # after a dialog asking to "Refund NaN USD".
    sub = active_subscription(own_api, plan, "Nora Comma")
    payment = own_api.ok("GET", f"/v1/payments?subscription_id={sub['id']}")["data"][0]
    page = own_console.page
    own_console.open(f"payments/{payment['id']}")
    refunds: list[Request] = []
    page.on("request", lambda r: r.url.endswith("/refunds") and refunds.append(r))
    for unreadable in ("2,50", "$2.50", "2.505"):
        page.get_by_label("Amount").fill(unreadable)
        page.get_by_role("button", name="Refund").click()
        amount = page.get_by_label("Amount")
        expect(amount).to_have_attribute("aria-invalid", "true")
        expect(page.locator(f"#{amount.get_attribute('aria-describedby')}")).to_contain_text(
            "at most 2 decimals, e.g. 12.50"
        )
        expect(page.get_by_role("dialog")).to_be_hidden()
    page.get_by_label("Amount").fill("2.50")
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_role("dialog")).to_contain_text("Refund 2.50 USD to Nora Comma?")
    own_console.confirm("Refund")
    expect(page.get_by_test_id("refunded")).to_have_text("2.50 USD")
    assert len(refunds) == 1
    assert own_api.ok("GET", f"/v1/payments/{payment['id']}")["amount_refunded"] == 250


def test_the_audit_trail_shows_every_event_not_only_the_first_page(
    own_console: Console, own_api: Api, plan: dict[str, Any]
) -> None:
    # The API pages the trail (20 by default, oldest first): the newest events were missing.
    sub = active_subscription(own_api, plan, "Otto Busy")
    for _ in range(10):
        own_api.ok("POST", f"/v1/subscriptions/{sub['id']}/cancel", {"at": "period_end"})
        own_api.ok("POST", f"/v1/subscriptions/{sub['id']}/resume", {})
    events = own_api.ok("GET", f"/v1/subscriptions/{sub['id']}/events?limit=100")["data"]
    assert len(events) > 20
    own_console.open(f"subscriptions/{sub['id']}")
    rows = own_console.page.get_by_role("table", name="Audit trail").locator("tbody tr")
    expect(rows).to_have_count(len(events))
    expect(rows.last).to_contain_text(events[-1]["type"])


def test_an_action_refused_with_a_final_409_is_sent_again_with_a_new_idempotency_key(
    own_console: Console, own_api: Api, plan: dict[str, Any]
) -> None:
    # A final 409 is stored as its key's answer: tried again with that key once the conflict
    # was gone (here, another tab removed the member again), it was replayed.
    sub = active_subscription(own_api, plan, "Pia Twotabs")
    member = f"/v1/subscriptions/{sub['id']}/members/{sub['dependent_id']}"
    own_api.ok("DELETE", f"{member}?at=period_end")
    page = own_console.page
    own_console.open(f"subscriptions/{sub['id']}")
    own_api.ok("POST", f"{member}/restore", {})  # another tab restores first
    page.get_by_role("button", name="Restore Pia Twotabs Jr").click()
    expect(page.get_by_role("alert")).to_contain_text("no pending removal")
    own_api.ok("DELETE", f"{member}?at=period_end")  # and removes again
    with page.expect_response(re.compile(r".*/restore$")) as second:
        page.get_by_role("button", name="Restore Pia Twotabs Jr").click()
    assert second.value.status == 200, second.value.text()
    expect(page.get_by_role("button", name="Remove at period end Pia Twotabs Jr")).to_be_visible()


def test_on_a_phone_the_page_never_scrolls_sideways(
    own_console: Console, own_api: Api, plan: dict[str, Any]
) -> None:
    # The navigation did not wrap, wide tables and long emails widened the whole page.
    sub = active_subscription(own_api, plan, "Quinn Phone")
    page = own_console.page
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 800})
    try:
        for route in ("customers", f"subscriptions/{sub['id']}"):
            own_console.open(route)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width == PHONE_WIDTH, (route, width)
            own_console.check_accessibility()  # a table that scrolls is reachable by keyboard
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_a_community_whose_creation_answer_was_lost_gets_a_new_key_not_a_blank_one(
    platform_console: Console, stack: LocalStack
) -> None:
    # Sent again with the same Idempotency-Key, the creation is replayed with the secret
    # redacted (null): the console showed "API key (shown only now):" and nothing.
    page = platform_console.page
    platform_console.open("communities")
    lost: list[dict[str, Any]] = []

    def lose_the_first_answer(route: Route) -> None:
        if route.request.method == "POST" and not lost:
            lost.append(route.fetch().json())  # the API created it; the browser never hears
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r".*/v1/communities$"), lose_the_first_answer)
    page.get_by_label("Name").fill("Lost answer club")
    page.get_by_role("button", name="Create community").click()
    expect(page.get_by_role("alert")).to_contain_text("No answer from the API")
    page.get_by_role("button", name="Create community").click()
    platform_console.settle()
    page.unroute(re.compile(r".*/v1/communities$"))
    platform_console.expect_problem("/v1/communities net::ERR_FAILED")
    expect(page.get_by_role("status")).to_contain_text("cannot be shown again")
    expect(page.get_by_label("Name")).to_have_value("")
    page.get_by_role("button", name="Issue a new key for Lost answer club").click()
    platform_console.settle()
    new_key = page.get_by_test_id("new-api-key").inner_text()
    assert new_key.startswith("mbk_")
    assert Api(stack, new_key).call("GET", "/v1/plans")[0] == 200
    assert Api(stack, lost[0]["api_key"]["secret"]).call("GET", "/v1/plans")[0] == 401


def test_a_subscription_or_profile_route_without_an_id_shows_the_customers_not_null(
    own_console: Console,
) -> None:
    # #/subscriptions asked the API for subscription "null": "Subscription null not found."
    for route in ("subscriptions", "profiles/"):
        own_console.open(route)
        expect(own_console.page.get_by_role("heading", name="Customers")).to_be_visible()
        expect(own_console.page.locator("main")).not_to_contain_text("null")


def test_a_card_saved_again_after_a_lost_answer_is_saved_not_a_script_error(
    own_console: Console, own_api: Api
) -> None:
    # The SetupIntent's replay has client_secret null (shown once): the console handed null to
    # Stripe.js and showed "Cannot read properties of null (reading 'match')".
    owner = own_api.customer("Rosa Retry", "rosa@example.com")
    page = own_console.page
    own_console.open(f"profiles/{owner['id']}")
    lost: list[bool] = []

    def lose_the_first_answer(route: Route) -> None:
        if not lost:
            lost.append(route.fetch().ok)  # the API made the SetupIntent; the browser never hears
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r".*/setup-intents$"), lose_the_first_answer)
    page.get_by_role("button", name="Add a card").click()
    form = page.get_by_role("form", name="Add a card")
    for label, value in (("number", GOOD_CARD), ("exp month", "12"), ("exp year", "31")):
        form.get_by_label(f"Card {label}").fill(value)
    form.get_by_label("Card cvc").fill("123")
    form.get_by_label("Card postal code").fill("10001")
    form.get_by_role("button", name="Save card").click()
    expect(form.get_by_role("alert")).to_contain_text("trying again is safe")
    form.get_by_role("button", name="Save card").click()
    form.wait_for(state="detached")
    page.unroute(re.compile(r".*/setup-intents$"))
    own_console.expect_problem("/setup-intents net::ERR_FAILED")
    expect(page.get_by_role("list", name="Cards")).to_contain_text("•••• 4242")
    assert len(own_api.ok("GET", f"/v1/profiles/{owner['id']}/payment-methods")["data"]) == 1


def test_a_profile_shows_credit_held_in_another_currency(
    own_console: Console, own_api: Api
) -> None:
    # Credit is kept per currency; the page showed only credit_balance (the community's USD):
    # "credit 0.00 USD" for a customer holding 2000 JPY from a downgrade.
    plans = [
        own_api.ok(
            "POST", "/v1/plans", {"name": name, "currency": "jpy", "prices": {"month": price}}
        )
        for name, price in (("Dojo", 3000), ("Dojo lite", 1000))
    ]
    sub = active_subscription(own_api, plans[0], "Sora Credit")
    own_api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/change-plan",
        {"plan_id": plans[1]["id"], "effective": "now"},
    )
    owner = own_api.ok("GET", f"/v1/profiles/{sub['owner_id']}")
    assert owner["credit_balances"]["jpy"] > 0
    own_console.open(f"profiles/{owner['id']}")
    expect(own_console.page.locator("hgroup")).to_contain_text(
        f"credit {owner['credit_balances']['jpy']} JPY"
    )


def test_reports_say_their_amounts_leave_out_other_currencies(
    own_console: Console, own_api: Api
) -> None:
    # MRR counts only the community's currency (API.md): with a JPY subscription active the
    # page read "MRR 0.00 USD" beside "active 1", with nothing saying why.
    yen = own_api.ok(
        "POST", "/v1/plans", {"name": "Onsen", "currency": "jpy", "prices": {"month": 2000}}
    )
    active_subscription(own_api, yen, "Taro Yen")
    own_console.open("reports")
    expect(own_console.page.get_by_test_id("report-currency")).to_contain_text(
        "in USD, the community's currency: plans and payments in other currencies are left out"
    )


def test_a_key_revoked_while_signed_in_sends_the_operator_back_to_sign_in(
    browser: Browser, stack: LocalStack, screenshot_dir: Path
) -> None:
    # Every page answered "Missing or unknown API key." while the tab stayed signed in and kept
    # the dead key in sessionStorage.
    platform = Api(stack, stack.config.platform_api_key)
    created = platform.ok("POST", "/v1/communities", {"name": "Rotating keys"})
    for tab in _console(browser, stack, screenshot_dir):
        tab.sign_in(created["api_key"]["secret"])
        tab.open("plans")
        platform.call(
            "DELETE", f"/v1/communities/{created['id']}/api-keys/{created['api_key']['id']}"
        )
        tab.open("customers")
        expect(tab.page.get_by_role("alert")).to_contain_text("The key stopped working")
        expect(tab.page.get_by_label("API key")).to_be_visible()
        assert tab.page.evaluate("sessionStorage.length") == 0
        tab.check_accessibility()


def test_a_plans_terms_name_its_retry_schedule(
    own_console: Console, own_api: Api, plan: dict[str, Any]
) -> None:
    # The terms ended in a bare "none" (or "1, 3"), saying nothing of what it was.
    own_api.ok(
        "POST",
        "/v1/plans",
        {"name": "Lead", "prices": {"month": 2000}, "retry_schedule_days": [1, 3]},
    )
    own_console.open("plans")
    terms = own_console.page.locator("article")
    expect(terms.filter(has_text="Bouldering")).to_contain_text("grace 14 days · no retries")
    expect(terms.filter(has_text="Lead")).to_contain_text("retries on days 1, 3")


def test_a_list_cut_short_says_so_and_a_name_not_found_among_it_is_not_final(
    browser: Browser, stack: LocalStack, screenshot_dir: Path
) -> None:
    # The Customers page reads at most 1,000 profiles (Payments: 300) and matched names among
    # them only, silently: an older customer was "No profiles match." (and created again).
    platform = Api(stack, stack.config.platform_api_key)
    created = platform.ok("POST", "/v1/communities", {"name": "Big gym"})
    big = Api(stack, created["api_key"]["secret"])
    oldest = big.customer("Ursula First", "ursula@example.com")
    for number in range(1000):
        big.customer(f"Member {number}", f"m{number}@example.com")
    for tab in _console(browser, stack, screenshot_dir):
        tab.sign_in(big.key)
        tab.open("customers")
        tab.page.get_by_label("Name or email").fill("Ursula")
        tab.page.get_by_role("button", name="Search").click()
        tab.settle()
        expect(tab.page.get_by_role("status")).to_contain_text(
            "Only the newest 1000 profiles are read; there are more."
        )
        tab.page.get_by_label("Name or email").fill(oldest["email"])
        tab.page.get_by_role("button", name="Search").click()
        tab.settle()
        expect(tab.page.get_by_role("link", name="Ursula First")).to_be_visible()


def test_a_number_the_console_cannot_read_is_refused_under_its_field_not_sent_as_null(
    own_console: Console, plan: dict[str, Any]
) -> None:
    # "7 days" went out as null (NaN in JSON): "This field cannot be null." for what the
    # operator typed; a blank grace on a new plan went out as 0 days.
    page = own_console.page
    own_console.open("plans")
    page.get_by_role("button", name="Edit Bouldering").click()
    edit = page.get_by_role("form", name="Edit Bouldering")
    sent: list[Request] = []
    page.on("request", lambda r: r.method == "PATCH" and sent.append(r))
    edit.get_by_label("Grace days").fill("7 days")
    edit.get_by_role("button", name="Save plan").click()
    grace = edit.get_by_label("Grace days")
    expect(grace).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{grace.get_attribute('aria-describedby')}")).to_have_text(
        "Enter a whole number, e.g. 7."
    )
    assert sent == []


def test_a_new_plan_whose_grace_is_left_blank_gets_the_default_not_zero_days(
    own_console: Console, own_api: Api
) -> None:
    # Number("") is 0: a cleared grace field made a plan that cancels at the first failure.
    page = own_console.page
    own_console.open("plans")
    page.get_by_role("button", name="New plan").click()
    form = page.get_by_role("form", name="New plan")
    form.get_by_label("Name", exact=True).fill("Blank grace")
    form.get_by_label("Monthly price").fill("12.00")
    form.get_by_label("Grace days after a failed payment").fill("")
    form.get_by_role("button", name="Create plan").click()
    form.wait_for(state="detached")
    plans = own_api.ok("GET", "/v1/plans?limit=100")["data"]
    created = next(p for p in plans if p["name"] == "Blank grace")
    assert created["failed_payment_grace_days"] == 14


def test_webhook_events_past_the_first_fifty_are_said_to_exist(
    platform_console: Console, stack: LocalStack, own_api: Api, plan: dict[str, Any]
) -> None:
    # The page asks for 50 and showed them as if they were all (a failed event further back
    # could not be found to replay without knowing it was there).
    platform = Api(stack, stack.config.platform_api_key)
    deadline = time.monotonic() + 60
    while not platform.ok("GET", "/v1/webhook-events?limit=50")["has_more"]:
        assert time.monotonic() < deadline, "Stripe's webhooks did not arrive"
        active_subscription(own_api, plan, "Vera Webhook")
    platform_console.open("webhook-events")
    expect(platform_console.page.get_by_role("status")).to_contain_text(
        "Only the newest 50 events are shown; there are more."
    )


def test_a_new_plan_in_a_yen_community_reads_its_prices_in_yen(
    browser: Browser, stack: LocalStack, screenshot_dir: Path
) -> None:
    # The form's currency was always "usd": in a JPY community "1500" made a USD plan, and with
    # the field cleared (the community's default) the price was read with 2 decimals and sent
    # as 150000: a 150,000 JPY plan.
    platform = Api(stack, stack.config.platform_api_key)
    created = platform.ok("POST", "/v1/communities", {"name": "Tokyo dojo", "currency": "jpy"})
    dojo = Api(stack, created["api_key"]["secret"])
    for tab in _console(browser, stack, screenshot_dir):
        tab.sign_in(dojo.key)
        tab.open("plans")
        tab.page.get_by_role("button", name="New plan").click()
        form = tab.page.get_by_role("form", name="New plan")
        expect(form.get_by_label("Currency")).to_have_value("jpy")
        form.get_by_label("Name", exact=True).fill("Judo")
        form.get_by_label("Monthly price").fill("1500")
        form.get_by_role("button", name="Create plan").click()
        form.wait_for(state="detached")
        [plan] = dojo.ok("GET", "/v1/plans")["data"]
        assert (plan["currency"], plan["prices"]) == ("jpy", {"month": 1500})


def test_a_removed_card_and_a_former_owner_read_as_such(
    own_console: Console, own_api: Api, plan: dict[str, Any]
) -> None:
    # A card detached from its customer is never charged again, and a replaced owner keeps the
    # subscription in their billing history as a former part (docs/rules/money.md, history.md):
    # the console showed the card like any other and a former part as a current one.
    owner = own_api.customer("Nia Detach", "nia@example.com", GOOD_CARD)
    inactive = own_api.ok(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": plan["id"],
            "owner_id": owner["id"],
            "member_ids": [owner["id"]],
            "billing_cycle": "month",
            "payment_method_id": owner["card"],
        },
    )
    own_api.ok("DELETE", f"/v1/profiles/{owner['id']}/payment-methods/{owner['card']}")
    own_console.open(f"subscriptions/{inactive['id']}")
    expect(own_console.page.locator("dl.summary")).to_contain_text("removed, cannot be charged")

    sub = active_subscription(own_api, plan, "Ole Former")
    successor = own_api.customer("Pia Successor", "pia@example.com", GOOD_CARD)
    own_api.ok(
        "PATCH",
        f"/v1/subscriptions/{sub['id']}",
        {"owner_id": successor["id"], "payment_method_id": successor["card"]},
    )
    own_api.ok("DELETE", f"/v1/subscriptions/{sub['id']}/members/{sub['owner_id']}?at=now")
    own_console.open(f"profiles/{sub['owner_id']}")
    history = own_console.page.locator("section[aria-labelledby='history-title']")
    expect(history).to_contain_text("Bouldering (former ")
