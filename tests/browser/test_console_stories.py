"""The seed's stories, walked through the console in chromium on the local stack.

The stories build on each other like an operator's afternoon (one community, one browser tab),
so they run in file order and share `World`; every page the stories reach is checked with
axe-core and photographed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.browser.conftest import Api, Console

pytestmark = pytest.mark.e2e

GOOD_CARD = "4242424242424242"
DECLINING_CARD = "4000000000000341"
SECOND_GOOD_CARD = "5555555555554444"


@dataclass
class World:
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def enter_card(page: Page, number: str) -> None:
    """Type a card into the Stripe Elements card field (localstripe's stand-in locally)."""
    page.get_by_role("button", name="Add a card").click()
    form = page.get_by_role("form", name="Add a card")
    form.get_by_label("Card number").fill(number)
    form.get_by_label("Card exp month").fill("12")
    form.get_by_label("Card exp year").fill("31")
    form.get_by_label("Card cvc").fill("123")
    form.get_by_label("Card postal code").fill("10001")
    form.get_by_role("button", name="Save card").click()
    form.wait_for(state="detached")


def choose(select: Locator, text: str) -> None:
    """Select the option whose text contains `text`."""
    value = select.locator("option", has_text=text).get_attribute("value")
    assert value is not None
    select.select_option(value)


def subscription_id_from(page: Page) -> str:
    match = re.search(r"#/subscriptions/(sub_\w+)", page.url)
    assert match, page.url
    return match.group(1)


def test_sign_in_refuses_a_wrong_key_and_keeps_the_key_out_of_cookies_and_local_storage(
    console: Console, community: dict[str, Any]
) -> None:
    page = console.page
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").fill("mbk_key_nothing_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    console.check_accessibility()
    console.screenshot("sign-in")
    # From the keyboard: focus the key field, type, Enter.
    page.get_by_label("API key").fill("")
    page.get_by_label("API key").focus()
    page.keyboard.type(community["api_key"]["secret"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert page.context.cookies() == []
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("Object.keys(sessionStorage)") != []


def test_story_1_create_a_plan_a_customer_with_a_dependent_and_a_card(
    console: Console, api: Api, world: World
) -> None:
    page = console.page
    console.open("plans")
    page.get_by_role("button", name="New plan").click()
    form = page.get_by_role("form", name="New plan")
    form.get_by_label("Name", exact=True).fill("Family")
    form.get_by_label("Monthly price").fill("-1")
    form.get_by_role("button", name="Create plan").click()
    # The API's error names prices.month: it shows under that field.
    monthly = form.get_by_label("Monthly price")
    expect(monthly).to_have_attribute("aria-invalid", "true")
    error_id = monthly.get_attribute("aria-describedby")
    expect(page.locator(f"#{error_id}")).to_contain_text("greater than or equal to 0")

    form.get_by_label("Monthly price").fill("30.00")
    form.get_by_label("Yearly price").fill("300.00")
    form.get_by_label("Activation fee (per member)").fill("5.00")
    form.get_by_label("Grace days after a failed payment").fill("7")
    form.get_by_label("Retry on days (comma-separated)").fill("1, 3")
    with page.expect_request(re.compile(r".*/v1/plans$")) as family_request:
        form.get_by_role("button", name="Create plan").click()
    family_key = family_request.value.headers.get("idempotency-key")
    form.wait_for(state="detached")
    expect(page.get_by_text("30.00 USD / month, 300.00 USD / year")).to_be_visible()

    # A second plan, whose first request is lost on the way: sent again, it carries the same
    # Idempotency-Key (the API cannot create it twice).
    plan_keys: list[str | None] = []

    def lose_first_request(route: Route) -> None:
        plan_keys.append(route.request.headers.get("idempotency-key"))
        if len(plan_keys) == 1:
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r".*/v1/plans$"), lose_first_request)
    page.get_by_role("button", name="New plan").click()
    form = page.get_by_role("form", name="New plan")
    form.get_by_label("Name", exact=True).fill("Single")
    form.get_by_label("Monthly price").fill("15")
    form.get_by_role("button", name="Create plan").click()
    expect(form.get_by_role("alert")).to_be_visible()
    form.get_by_role("button", name="Create plan").click()
    form.wait_for(state="detached")
    page.unroute(re.compile(r".*/v1/plans$"))
    console.expect_problem("/v1/plans net::ERR_FAILED")
    assert len(plan_keys) == 2 and plan_keys[0] == plan_keys[1] is not None
    assert plan_keys[0] != family_key
    page.get_by_role("button", name="Edit Single").click()
    edit = page.get_by_role("form", name="Edit Single")
    edit.get_by_label("Description").fill("One adult")
    edit.get_by_role("button", name="Save plan").click()
    edit.wait_for(state="detached")
    expect(page.get_by_text("One adult")).to_be_visible()
    console.check_accessibility()
    console.screenshot("plans")
    page.get_by_role("button", name="Archive Single").click()
    console.confirm("Archive")
    expect(page.get_by_text("Single")).to_have_count(0)
    plans = api.ok("GET", "/v1/plans")["data"]
    assert {p["name"]: p["status"] for p in plans} == {"Family": "active", "Single": "archived"}
    world.ids["plan"] = next(p["id"] for p in plans if p["name"] == "Family")

    console.open("customers")
    page.get_by_text("New customer").click()
    form = page.get_by_role("form", name="New customer")
    form.get_by_label("Name").fill("Ada Lovelace")
    form.get_by_label("Email").fill("ada@example.com")
    form.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    console.settle()
    page.get_by_label("Dependent's name").fill("Byron Lovelace")
    page.get_by_role("button", name="Add dependent").click()
    expect(page.get_by_role("link", name="Byron Lovelace")).to_be_visible()
    page.get_by_label("Dependent's name").fill("Charlotte Lovelace")
    page.get_by_role("button", name="Add dependent").click()
    expect(page.get_by_role("link", name="Charlotte Lovelace")).to_be_visible()
    enter_card(page, GOOD_CARD)
    expect(page.get_by_role("list", name="Cards")).to_contain_text("•••• 4242")
    world.ids["ada"] = page.url.rsplit("/", 1)[-1]
    cards = api.ok("GET", f"/v1/profiles/{world.ids['ada']}/payment-methods")["data"]
    assert [c["last4"] for c in cards] == ["4242"]


def test_story_2_create_a_subscription_preview_it_and_confirm_and_pay(
    console: Console, api: Api, world: World
) -> None:
    page = console.page
    console.open(f"profiles/{world.ids['ada']}")
    form = page.get_by_role("form", name="New subscription")
    form.get_by_label("Byron Lovelace").check()
    console.check_accessibility()
    form.get_by_role("button", name="Create subscription").click()
    page.wait_for_url(re.compile(r"#/subscriptions/sub_"))
    console.settle()
    world.ids["sub"] = subscription_id_from(page)
    expect(page.locator(".summary")).to_contain_text("inactive")

    page.get_by_role("button", name="Activate: show summary").click()
    summary = page.get_by_role("table", name="Summary")
    # Two members: the plan per member (2 x 30.00) and two activation fees (5.00 each).
    expect(summary).to_contain_text("Total70.00 USD")
    # A double click is one user action: one Idempotency-Key, one charge.
    activation_keys: list[str | None] = []
    page.on(
        "request",
        lambda request: (
            request.url.endswith("/activate")
            and activation_keys.append(request.headers.get("idempotency-key"))
        ),
    )
    page.get_by_role("button", name="Confirm & Pay").dblclick()
    expect(page.locator(".summary")).to_contain_text("active")
    console.settle()
    assert activation_keys and len(set(activation_keys)) == 1
    assert str(activation_keys[0]).startswith("console-")
    payments = api.ok("GET", f"/v1/payments?subscription_id={world.ids['sub']}")["data"]
    assert [(p["kind"], p["status"], p["total"]) for p in payments] == [
        ("activation", "succeeded", 7000)
    ]


def test_story_3_add_a_member_with_the_fee_waived(console: Console, api: Api, world: World) -> None:
    page = console.page
    console.open(f"subscriptions/{world.ids['sub']}")
    form = page.get_by_role("form", name="Add a member")
    form.get_by_label("Profile").select_option(label="Charlotte Lovelace (dependent)")
    form.get_by_label("Waive").check()
    form.get_by_label("Send a welcome email").check()
    form.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text("Added.")
    row = page.get_by_role("row").filter(has_text="Charlotte Lovelace")
    expect(row).to_contain_text("waived")
    sub = api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")
    fees = {m["name"]: m["activation_fee"]["status"] for m in sub["members"]}
    assert fees == {
        "Ada Lovelace": "paid",
        "Byron Lovelace": "paid",
        "Charlotte Lovelace": "waived",
    }


def test_story_4_remove_a_member_at_period_end_then_restore_them_from_the_keyboard(
    console: Console, api: Api, world: World
) -> None:
    page = console.page
    console.open(f"subscriptions/{world.ids['sub']}")
    page.get_by_role("button", name="Remove at period end Byron Lovelace").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Remove Byron Lovelace at the end of the period?")
    # The modal dialog takes focus; Tab reaches its confirm button.
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Remove member")).to_be_focused()
    page.keyboard.press("Enter")
    row = page.get_by_role("row").filter(has_text="Byron Lovelace")
    expect(row).to_contain_text("at 20")
    sub = api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")
    byron = next(m for m in sub["members"] if m["name"] == "Byron Lovelace")
    assert byron["removal"]["effective_at"] == sub["current_period"]["end"]

    page.get_by_role("button", name="Restore Byron Lovelace").click()
    expect(page.get_by_role("button", name="Remove at period end Byron Lovelace")).to_be_visible()
    sub = api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")
    assert all(m["removal"] is None for m in sub["members"])


def test_story_5_cancel_at_period_end_then_resume(console: Console, api: Api, world: World) -> None:
    page = console.page
    console.open(f"subscriptions/{world.ids['sub']}")
    page.get_by_role("button", name="Cancel at period end").click()
    # Cancelling from the dialog's Cancel button changes nothing.
    page.get_by_role("dialog").get_by_role("button", name="Cancel", exact=True).click()
    assert api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")["status"] == "active"
    page.get_by_role("button", name="Cancel at period end").click()
    console.confirm("Cancel subscription")
    expect(page.locator(".summary")).to_contain_text("expiring")
    expect(page.locator(".summary")).to_contain_text("Ends")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".summary")).to_contain_text("active")
    sub = api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")
    assert (sub["status"], sub["cancel_at"]) == ("active", None)
    events = api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}/events")["data"]
    audit = page.get_by_role("table", name="Audit trail")
    for event in events:
        expect(audit).to_contain_text(event["type"])
    console.check_accessibility()
    console.screenshot("subscription")


def test_story_6_a_declining_card_fails_the_renewal_and_a_new_card_reactivates(
    console: Console, platform_console: Console, api: Api, world: World
) -> None:
    page = console.page
    # Another household whose card starts declining too: it stays in failed_payment (story 8).
    grace = api.customer("Grace Hopper", "grace@example.com", card=GOOD_CARD)
    grace_sub = api.ok(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": world.ids["plan"],
            "owner_id": grace["id"],
            "member_ids": [grace["id"]],
            "billing_cycle": "month",
            "payment_method_id": grace["card"],
        },
    )
    api.ok("POST", f"/v1/subscriptions/{grace_sub['id']}/activate", {})
    declining = api.card(grace["id"], DECLINING_CARD)
    api.ok("PATCH", f"/v1/subscriptions/{grace_sub['id']}", {"payment_method_id": declining})
    world.ids["grace"] = grace["id"]

    console.open(f"profiles/{world.ids['ada']}")
    enter_card(page, DECLINING_CARD)
    expect(page.get_by_role("list", name="Cards")).to_contain_text("•••• 0341")
    console.open(f"subscriptions/{world.ids['sub']}")
    edit = page.get_by_role("form", name="Edit subscription")
    choose(edit.get_by_label("Card"), "0341")
    edit.get_by_label("Billing cycle").select_option("year")
    expect(edit).to_contain_text("Unsaved: payment method id, billing cycle")
    # Leaving without saving discards the draft.
    console.open("customers")
    console.open(f"subscriptions/{world.ids['sub']}")
    edit = page.get_by_role("form", name="Edit subscription")
    expect(edit.get_by_role("button", name="Save")).to_be_disabled()
    choose(edit.get_by_label("Card"), "0341")
    edit.get_by_role("button", name="Save").click()
    expect(page.locator(".summary")).to_contain_text("•••• 0341")
    sub = api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")
    assert (sub["payment_method"]["last4"], sub["billing_cycle"]) == ("0341", "month")

    # The platform operator advances the test clock past the period end.
    clock = platform_console
    clock.open("test-clock")
    clock.page.get_by_label("Amount").fill("32")
    clock.page.get_by_role("button", name="Advance").click()
    scheduler_report = clock.page.get_by_role("heading", name="What the scheduler did")
    expect(scheduler_report).to_be_visible(timeout=60_000)
    expect(clock.page.get_by_test_id("processed-renewals_failed")).to_have_text("2")
    clock.check_accessibility()
    clock.screenshot("test-clock")

    console.open(f"subscriptions/{world.ids['sub']}")
    expect(page.locator(".summary")).to_contain_text("failed payment")
    failed_row = (
        page.get_by_role("table", name="Payments of this subscription")
        .get_by_role("row")
        .filter(has_text="renewal")
    )
    expect(failed_row).to_contain_text("failed")
    expect(failed_row).to_contain_text("card_declined")

    # Reactivating with the same declining card: the 402 shows the decline reason.
    page.get_by_role("button", name="Reactivate: show summary").click()
    page.get_by_role("button", name="Confirm & Pay").click()
    expect(page.get_by_role("alert")).to_contain_text("Payment declined")
    expect(page.get_by_role("alert")).to_contain_text("card_declined")
    payments_table = page.get_by_role("table", name="Payments of this subscription")
    expect(payments_table.get_by_role("row").filter(has_text="reactivation")).to_contain_text(
        "failed"
    )
    console.check_accessibility()
    console.screenshot("subscription-reactivate")
    assert api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")["status"] == "failed_payment"

    console.open(f"profiles/{world.ids['ada']}")
    enter_card(page, SECOND_GOOD_CARD)
    expect(page.get_by_role("list", name="Cards")).to_contain_text("•••• 4444")
    console.open(f"subscriptions/{world.ids['sub']}")
    choose(page.get_by_label("Card to charge"), "4444")
    page.get_by_role("button", name="Reactivate: show summary").click()
    expect(page.get_by_role("table", name="Summary")).to_contain_text("Total")
    page.get_by_role("button", name="Confirm & Pay").click()
    expect(page.locator(".summary")).to_contain_text("active")
    expect(page.locator(".summary")).to_contain_text("•••• 4444")
    sub = api.ok("GET", f"/v1/subscriptions/{world.ids['sub']}")
    assert (sub["status"], sub["payment_method"]["last4"]) == ("active", "4444")
    kinds = [
        (p["kind"], p["status"])
        for p in api.ok("GET", f"/v1/payments?subscription_id={world.ids['sub']}")["data"]
    ]
    assert ("reactivation", "succeeded") in kinds
    assert ("renewal", "failed") in kinds
    console.open(f"profiles/{world.ids['ada']}")
    history = page.get_by_role("table", name=f"Payments of {world.ids['sub']}")
    expect(history).to_contain_text("reactivation")
    console.check_accessibility()
    console.screenshot("profile")


def test_story_7_refund_part_of_a_payment(console: Console, api: Api, world: World) -> None:
    page = console.page
    console.open("payments")
    expect(page.get_by_role("table", name="Payments")).to_contain_text("reactivation")
    console.check_accessibility()
    console.screenshot("payments")
    page.get_by_label("Kind").select_option("reactivation")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    console.settle()
    rows = page.get_by_role("table", name="Payments").get_by_role("row")
    expect(rows).to_have_count(2)  # the header and the one paid reactivation
    rows.nth(1).get_by_role("link").click()
    console.settle()
    expect(page.get_by_role("table", name="Order summary")).to_contain_text("Family")
    page.get_by_label("Amount").fill("10.00")
    page.get_by_label("Reason").fill("requested_by_customer")
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_role("dialog")).to_contain_text("Refund 10.00 USD to Ada Lovelace?")
    console.confirm("Refund")
    expect(page.get_by_test_id("refunded")).to_have_text("10.00 USD")
    expect(page.locator(".summary")).to_contain_text("partially refunded")
    console.check_accessibility()
    console.screenshot("payment")
    payment_id = page.url.rsplit("/", 1)[-1]
    payment = api.ok("GET", f"/v1/payments/{payment_id}")
    assert (payment["status"], payment["amount_refunded"]) == ("partially_refunded", 1000)


def test_story_8_filter_customers_by_each_status(console: Console, api: Api, world: World) -> None:
    page = console.page
    plan = world.ids["plan"]

    def household(name: str, email: str) -> tuple[dict[str, Any], dict[str, Any]]:
        owner = api.customer(name, email, card=GOOD_CARD)
        sub = api.ok(
            "POST",
            "/v1/subscriptions",
            {
                "plan_id": plan,
                "owner_id": owner["id"],
                "member_ids": [owner["id"]],
                "billing_cycle": "month",
                "payment_method_id": owner["card"],
            },
        )
        return owner, sub

    household("Ivy Inactive", "ivy@example.com")
    _, expiring = household("Eve Expiring", "eve@example.com")
    api.ok("POST", f"/v1/subscriptions/{expiring['id']}/activate", {})
    api.ok("POST", f"/v1/subscriptions/{expiring['id']}/cancel", {"at": "period_end"})
    _, cancelled = household("Carl Cancelled", "carl@example.com")
    api.ok("POST", f"/v1/subscriptions/{cancelled['id']}/activate", {})
    api.ok("POST", f"/v1/subscriptions/{cancelled['id']}/cancel", {"at": "now"})

    expected = {
        "inactive": {"Ivy Inactive"},
        "active": {"Ada Lovelace", "Byron Lovelace", "Charlotte Lovelace"},
        "expiring": {"Eve Expiring"},
        "failed_payment": {"Grace Hopper"},
        "cancelled": {"Carl Cancelled"},
    }
    console.open("customers")
    table = page.get_by_role("table", name="Profiles")
    for status, names in expected.items():
        page.get_by_label("Subscription status").select_option(status)
        page.get_by_role("button", name="Search").click()
        console.settle()
        shown = table.locator("tbody tr td:first-child")
        expect(shown).to_have_count(len(names))
        assert set(shown.all_inner_texts()) == names, status

    page.get_by_label("Subscription status").select_option("")
    page.get_by_label("Name or email").fill("grace@example.com")
    page.get_by_role("button", name="Search").click()
    console.settle()
    expect(table.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Name or email").fill("lovelace")
    page.get_by_role("button", name="Search").click()
    console.settle()
    expect(table.locator("tbody tr")).to_have_count(3)

    # The free-access switch.
    page.get_by_label("Free access for Byron Lovelace").check()
    console.settle()
    expect(page.get_by_label("Free access for Byron Lovelace")).to_be_checked()
    byron = api.ok("GET", "/v1/profiles?kind=dependent")["data"]
    assert {p["name"]: p["free_access"] for p in byron}["Byron Lovelace"] is True

    page.get_by_label("Name or email").fill("")
    page.get_by_role("button", name="Search").click()
    # Every profile again (the search before showed 3).
    expect(table.locator("tbody tr")).to_have_count(7)
    console.check_accessibility()
    console.screenshot("customers")


def test_change_plan_now_then_back_at_period_end(console: Console, api: Api, world: World) -> None:
    page = console.page
    premium = api.ok("POST", "/v1/plans", {"name": "Premium", "prices": {"month": 4500}})
    owner = api.customer("Hedy Lamarr", "hedy@example.com", card=GOOD_CARD)
    child = api.ok(
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "Anthony Lamarr", "account_holder_id": owner["id"]},
    )
    sub = api.ok(
        "POST",
        "/v1/subscriptions",
        {
            "plan_id": world.ids["plan"],
            "owner_id": owner["id"],
            "member_ids": [owner["id"], child["id"]],
            "billing_cycle": "month",
            "payment_method_id": owner["card"],
        },
    )
    api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})

    console.open(f"subscriptions/{sub['id']}")
    form = page.get_by_role("form", name="Change plan")
    form.get_by_label("New plan").select_option(premium["id"])
    form.get_by_label("Effective").select_option("now")
    form.get_by_role("button", name="Change plan").click()
    expect(page.get_by_role("dialog")).to_contain_text("Change to Premium now?")
    console.confirm("Change plan")
    expect(page.locator(".summary")).to_contain_text("Premium · 45.00 USD per month")
    kinds = [p["kind"] for p in api.ok("GET", f"/v1/payments?subscription_id={sub['id']}")["data"]]
    assert "plan_change" in kinds

    form = page.get_by_role("form", name="Change plan")
    form.get_by_label("New plan").select_option(world.ids["plan"])
    form.get_by_label("Effective").select_option("period_end")
    form.get_by_role("button", name="Change plan").click()
    console.confirm("Change plan")
    expect(page.locator(".summary")).to_contain_text("plan → Family")
    changed = api.ok("GET", f"/v1/subscriptions/{sub['id']}")
    assert (changed["plan"]["name"], changed["pending_changes"]) == (
        "Premium",
        {"plan_id": world.ids["plan"]},
    )

    # The destructive "now" actions: a member removed at once, then the subscription cancelled.
    page.get_by_role("button", name="Remove now Anthony Lamarr").click()
    expect(page.get_by_role("dialog")).to_contain_text("Their access ends immediately")
    console.confirm("Remove member")
    expect(page.get_by_role("table", name="Members")).not_to_contain_text("Anthony Lamarr")
    page.get_by_role("button", name="Cancel now").click()
    console.confirm("Cancel subscription")
    expect(page.locator(".summary")).to_contain_text("cancelled")
    cancelled = api.ok("GET", f"/v1/subscriptions/{sub['id']}")
    assert (cancelled["status"], cancelled["cancellation_reason"]) == ("cancelled", "requested")
    assert [m["name"] for m in cancelled["members"]] == ["Hedy Lamarr"]


def test_reports_show_mrr_counts_fees_and_a_chart(console: Console, api: Api) -> None:
    page = console.page
    console.open("reports")
    summary = api.ok("GET", "/v1/reports/summary")
    assert summary["mrr"] > 0
    expect(page.get_by_test_id("mrr")).to_have_text(f"{summary['mrr'] / 100:.2f} USD")
    counts = page.get_by_role("table", name="Subscriptions by status")
    for status, count in summary["subscriptions_by_status"].items():
        label = status.replace("_", " ")
        expect(counts.get_by_role("row", name=f"{label} {count}", exact=True)).to_be_visible()
    chart = page.get_by_role("img", name=re.compile("Bar chart of subscriptions"))
    expect(chart).to_be_visible()
    console.check_accessibility()
    console.screenshot("reports")


def test_platform_pages_list_communities_and_webhook_events(
    platform_console: Console, community: dict[str, Any]
) -> None:
    page = platform_console.page
    platform_console.open("communities")
    expect(page.get_by_role("table", name="Communities")).to_contain_text(community["id"])
    form = page.get_by_role("form", name="New community")
    form.get_by_label("Application fee (basis points)").fill("20000")
    form.get_by_label("Name").fill("Lakeside club")
    form.get_by_role("button", name="Create community").click()
    fee = form.get_by_label("Application fee (basis points)")
    expect(fee).to_have_attribute("aria-invalid", "true")
    fee.fill("250")
    form.get_by_role("button", name="Create community").click()
    expect(page.get_by_test_id("new-api-key")).to_contain_text("mbk_")
    expect(page.get_by_role("table", name="Communities")).to_contain_text("Lakeside club")
    platform_console.check_accessibility()
    platform_console.screenshot("communities")

    platform_console.open("webhook-events")
    events = page.get_by_role("table", name="Webhook events")
    expect(events).to_contain_text("payment_intent.succeeded")
    platform_console.check_accessibility()
    platform_console.screenshot("webhook-events")
