"""Issue 11 items 4 and 5 through the API on moto + localstripe: a sub-minimum charge is
carried to the next one, exactly once, and credit is kept per currency in DynamoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.billing_api import Api, api_at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)  # a 30-day period: Apr 1 -> May 1


def test_a_seventeen_cent_member_is_added_now_and_charged_once_at_renewal(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 1000})
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    kid = api.dependent(owner["id"])
    path = f"/v1/subscriptions/{sub['id']}"
    api.env.clock.advance_to(datetime(2026, 4, 30, 12, tzinfo=UTC))  # 12 hours left

    added = api.ok(
        "POST",
        f"{path}/members",
        {"members": [{"profile_id": kid["id"], "activation_fee": "charge"}]},
    )
    assert added["payment"] is None  # 0.17 USD is under Stripe's 0.50: nothing charged now
    assert kid["id"] in [m["profile_id"] for m in added["subscription"]["members"]]
    assert len(api.payments(sub["id"])) == 1  # the activation only
    assert added["subscription"]["carried"] == [
        {
            "amount": 17,
            "incurred_at": "2026-04-30T12:00:00Z",
            "description": "Gold: rest of the current period",
        }
    ]

    preview = api.ok("GET", f"{path}/preview?action=renew")
    carried = [ln for ln in preview["lines"] if ln["kind"] == "carried"]
    assert [(ln["amount"], ln["quantity"]) for ln in carried] == [(17, 1)]
    assert "2026-04-30" in carried[0]["description"]
    assert (preview["subtotal"], preview["total"], preview["carried_forward"]) == (2017, 2017, 0)

    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    actions = api.env.container.scheduled
    assert actions.renew(api.community_id, sub["id"], api.env.clock.now()) == "renewed"
    renewal = api.payments(sub["id"])[0]
    assert (renewal["kind"], renewal["status"], renewal["total"]) == ("renewal", "succeeded", 2017)
    assert [ln["amount"] for ln in renewal["lines"] if ln["kind"] == "carried"] == [17]
    assert api.intent(renewal["stripe"]["payment_intent_id"]).amount == 2017

    assert api.ok("GET", path)["carried"] == []
    june = api.ok("GET", f"{path}/preview?action=renew")
    assert [ln for ln in june["lines"] if ln["kind"] == "carried"] == []  # charged once


def test_credit_is_kept_per_currency_and_never_spent_in_another(api_at: Any) -> None:
    api: Api = api_at(APRIL)  # the community's currency: usd
    gold = api.plan(name="Gold", currency="eur", prices={"month": 3000})
    silver = api.plan(name="Silver", currency="eur", prices={"month": 1500})
    owner = api.customer("Ada")
    eur_sub = api.active(gold, owner)
    api.env.clock.advance(timedelta(days=10))
    api.ok(
        "POST",
        f"/v1/subscriptions/{eur_sub['id']}/change-plan",
        {"plan_id": silver["id"], "effective": "now"},
    )
    profile = api.ok("GET", f"/v1/profiles/{owner['id']}")
    # 1500 x 20/30 days = 1000 EUR cents of credit; none in the profile's own USD
    assert (profile["credit_balance"], profile["currency"]) == (0, "usd")
    assert profile["credit_balances"] == {"eur": 1000}

    usd_plan = api.plan(name="Local", prices={"month": 2000})
    usd_sub = api.active(usd_plan, owner)
    [activation] = api.payments(usd_sub["id"])
    assert (activation["credit_applied"], activation["total"]) == (0, 2000)
    assert api.ok("GET", f"/v1/profiles/{owner['id']}")["credit_balances"] == {"eur": 1000}
