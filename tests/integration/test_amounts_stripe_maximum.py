"""No charge above Stripe's maximum is ever sent (docs/rules/amounts.md, item 5b).

Stripe takes at most eight digits of minor units in one charge (99,999,999: 999,999.99 USD) and
refuses more with `amount_too_large`; localstripe accepts any amount, so these tests check that
the API refuses such a charge itself (400 naming the field, nothing written, nothing sent).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import Env
from tests.support.billing_api import Api, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["billing_env", "localstripe_url"]

STRIPE_MAXIMUM = 99_999_999


@pytest.fixture
def api(billing_env: Env, localstripe_url: str) -> Api:
    return Api(billing_env, localstripe_url).new()


def _refused(reply_body: dict[str, object], field: str) -> str:
    error = reply_body["error"]
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request", error
    [detail] = error["details"]
    assert detail["field"] == field, error
    return str(detail["message"])


def test_a_price_or_fee_above_stripes_maximum_is_refused(api: Api) -> None:
    price = api.call("POST", "/v1/plans", {"name": "Gold", "prices": {"month": 100_000_000}})
    assert price.status == 400, price.body
    assert "999,999.99 USD" in _refused(price.body, "prices.month")
    fee = api.call(
        "POST",
        "/v1/plans",
        {"name": "Gold", "prices": {"month": 3000}, "activation_fee": 100_000_000},
    )
    assert fee.status == 400, fee.body
    _refused(fee.body, "activation_fee")
    at_the_maximum = api.plan(prices={"month": STRIPE_MAXIMUM})
    assert at_the_maximum["prices"] == {"month": STRIPE_MAXIMUM}


def test_a_subscription_whose_period_costs_more_than_one_charge_takes_is_refused(
    api: Api,
) -> None:
    plan = api.plan(prices={"month": 30_000_000, "year": 60_000_000})
    owner = api.customer("Ada")
    kid = api.dependent(owner["id"])
    body = {
        "plan_id": plan["id"],
        "owner_id": owner["id"],
        "member_ids": [owner["id"], kid["id"]],
        "billing_cycle": "month",
        "payment_method_id": owner["card"],
    }
    # 2 x 600,000.00 USD a year (the cycle it can switch to at any time) cannot be charged.
    reply = api.call("POST", "/v1/subscriptions", body)
    assert reply.status == 400, reply.body
    message = _refused(reply.body, "member_ids")
    assert "1,200,000.00 USD" in message and "999,999.99 USD" in message
    listed = api.ok("GET", f"/v1/subscriptions?owner_id={owner['id']}")
    assert listed["data"] == []


def test_an_activation_whose_fees_take_it_above_the_maximum_is_refused_unsent(api: Api) -> None:
    plan = api.plan(prices={"month": 60_000_000}, activation_fee=50_000_000)
    owner = api.customer("Ada")
    sub = api.subscription(plan, owner)

    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})

    assert reply.status == 400, reply.body
    assert "1,100,000.00 USD" in _refused(reply.body, "member_ids")
    assert api.payments(sub["id"]) == []  # no payment written, so no PaymentIntent sent
    stored = api.ok("GET", f"/v1/subscriptions/{sub['id']}")
    assert stored["status"] == "inactive" and stored["version"] == sub["version"]


def test_adding_members_beyond_what_one_renewal_can_charge_is_refused(api: Api) -> None:
    plan = api.plan(prices={"month": 50_000_000})
    owner = api.customer("Ada")
    kid = api.dependent(owner["id"])
    sub = api.active(plan, owner)
    paid = api.payments(sub["id"])

    reply = api.call(
        "POST", f"/v1/subscriptions/{sub['id']}/members", {"members": [{"profile_id": kid["id"]}]}
    )

    assert reply.status == 400, reply.body
    assert "1,000,000.00 USD" in _refused(reply.body, "members")
    assert api.payments(sub["id"]) == paid
    assert [
        m["profile_id"] for m in api.ok("GET", f"/v1/subscriptions/{sub['id']}")["members"]
    ] == [owner["id"]]
