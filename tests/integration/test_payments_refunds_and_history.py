"""Refunds (full, partial, too much), payment lists, billing history and the report summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.billing_api import Api, api_at, billing_env
from tests.support.localstripe import localstripe_url, stripe_for

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def stripe_refunds(api: Api, intent_id: str) -> list[int]:
    listed = stripe_for(api.stripe_url).v1.refunds.list(params={"payment_intent": intent_id})
    return [int(r.amount) for r in listed.data]


def test_partial_then_full_refund_and_never_more_than_is_left(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 3000})
    sub = api.active(plan, api.customer("Ada"))
    [payment] = api.payments(sub["id"])
    path = f"/v1/payments/{payment['id']}/refunds"

    part = api.ok("POST", path, {"amount": 1000, "reason": "goodwill"}, 201)
    assert (part["payment_id"], part["amount"], part["status"]) == (
        payment["id"],
        1000,
        "succeeded",
    )
    assert part["id"].startswith("ref_")
    after = api.ok("GET", f"/v1/payments/{payment['id']}")
    assert (after["status"], after["amount_refunded"]) == ("partially_refunded", 1000)

    too_much = api.call("POST", path, {"amount": 2001})
    assert too_much.status == 400
    assert too_much.body["error"]["details"][0]["field"] == "amount"
    assert api.ok("GET", f"/v1/payments/{payment['id']}")["amount_refunded"] == 1000
    assert api.call("POST", path, {"amount": 0}).status == 400
    # null is no amount (a client's NaN goes out as null): refused, never "all that is left".
    null_amount = api.call("POST", path, {"amount": None})
    assert null_amount.status == 400
    assert null_amount.body["error"]["details"][0]["field"] == "amount"
    assert api.ok("GET", f"/v1/payments/{payment['id']}")["amount_refunded"] == 1000

    rest = api.ok("POST", path, {}, 201)
    assert rest["amount"] == 2000
    done = api.ok("GET", f"/v1/payments/{payment['id']}")
    assert (done["status"], done["amount_paid"], done["amount_refunded"]) == (
        "refunded",
        3000,
        3000,
    )
    assert sorted(stripe_refunds(api, payment["stripe"]["payment_intent_id"])) == [1000, 2000]
    nothing_left = api.call("POST", path, {})  # API.md: nothing left: 400
    assert nothing_left.status == 400
    assert nothing_left.body["error"]["details"][0]["field"] == "amount"
    assert api.call("POST", "/v1/payments/pay_nope/refunds", {}).status == 404
    assert "payment.refund_started" in api.events(sub["id"])
    assert api.ok("GET", f"/v1/subscriptions/{sub['id']}")["status"] == "active"


def test_payment_lists_filter_and_page(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan()
    owner = api.customer("Ada")
    first = api.active(plan, owner)
    second = api.active(plan, api.customer("Bo"))
    declined = api.subscription(plan, api.customer("Cy", card="4000000000000341"))
    assert api.call("POST", f"/v1/subscriptions/{declined['id']}/activate", {}).status == 402

    page = api.ok("GET", "/v1/payments?limit=2")
    assert len(page["data"]) == 2 and page["has_more"] is True
    rest = api.ok("GET", f"/v1/payments?limit=2&starting_after={page['next_cursor']}")
    assert len(rest["data"]) == 1 and rest["has_more"] is False
    failed = api.ok("GET", "/v1/payments?status=failed")["data"]
    assert [p["subscription_id"] for p in failed] == [declined["id"]]
    mine = api.ok("GET", f"/v1/payments?profile_id={owner['id']}")["data"]
    assert [p["subscription_id"] for p in mine] == [first["id"]]
    assert len(api.ok("GET", "/v1/payments?kind=activation")["data"]) == 3
    assert api.ok("GET", "/v1/payments?kind=renewal")["data"] == []
    assert api.call("GET", "/v1/payments?status=bogus").status == 400
    assert api.call("GET", "/v1/payments?starting_after=garbage").status == 400
    subs = api.ok("GET", "/v1/subscriptions?status=active&limit=1")
    assert len(subs["data"]) == 1 and subs["has_more"] is True
    assert {s["id"] for s in api.ok("GET", "/v1/subscriptions?status=active")["data"]} == {
        first["id"],
        second["id"],
    }
    owned = api.ok("GET", f"/v1/subscriptions?owner_id={owner['id']}")["data"]
    assert [s["id"] for s in owned] == [first["id"]]
    membered = api.ok("GET", f"/v1/subscriptions?member_id={owner['id']}&status=active")["data"]
    assert [s["id"] for s in membered] == [first["id"]]
    # Another community sees none of it.
    other = api.new()
    assert other.ok("GET", "/v1/payments")["data"] == []
    assert other.call("GET", f"/v1/payments/{failed[0]['id']}").status == 404
    assert other.call("GET", f"/v1/subscriptions/{first['id']}").status == 404


def test_billing_history_of_an_owner_and_a_dependent(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan()
    owner = api.customer("Ada")
    kid = api.dependent(owner["id"])
    old = api.active(plan, owner, [owner["id"], kid["id"]])
    api.ok("POST", f"/v1/subscriptions/{old['id']}/cancel", {"at": "now"})
    api.env.clock.advance(timedelta(days=1))
    new = api.active(plan, owner, [kid["id"]])

    history = api.ok("GET", f"/v1/profiles/{owner['id']}/billing-history")["data"]
    assert [(h["subscription"]["id"], h["role"]) for h in history] == [
        (new["id"], "owner"),
        (old["id"], "owner"),
    ]
    assert history[1]["subscription"]["status"] == "cancelled"
    assert [p["kind"] for p in history[1]["payments"]] == ["activation"]
    assert history[0]["payments"][0]["total"] == 3000
    kid_history = api.ok("GET", f"/v1/profiles/{kid['id']}/billing-history")["data"]
    assert [(h["subscription"]["id"], h["role"]) for h in kid_history] == [
        (new["id"], "member"),
        (old["id"], "member"),
    ]
    assert api.call("GET", "/v1/profiles/prof_nope/billing-history").status == 404


def test_report_summary_counts_with_queries(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    monthly = api.plan(prices={"month": 3000, "year": 30001})
    yearly_owner = api.customer("Yan")
    api.active(monthly, api.customer("Ada"))
    api.active(monthly, yearly_owner, billing_cycle="year")
    leaving = api.active(monthly, api.customer("Bo"))
    api.ok("POST", f"/v1/subscriptions/{leaving['id']}/cancel", {"at": "period_end"})
    api.subscription(monthly, api.customer("Cy"))
    free = api.ok(
        "POST",
        "/v1/profiles",
        {"kind": "customer", "name": "Vip", "email": "vip@example.com", "free_access": True},
        201,
    )
    assert free["free_access"] is True
    paid = api.payments(leaving["id"])[0]
    api.ok("POST", f"/v1/payments/{paid['id']}/refunds", {"amount": 500}, 201)

    report = api.ok("GET", "/v1/reports/summary")

    assert report["currency"] == "usd"
    assert report["subscriptions_by_status"] == {
        "inactive": 1,
        "active": 2,
        "failed_payment": 0,
        "expiring": 1,
        "cancelled": 0,
    }
    assert report["mrr"] == 3000 + 2500  # 30001 / 12 = 2500.08 -> 2500
    assert report["members_with_access"] == 4  # Ada, Yan, Bo (expiring) and Vip (free)
    assert report["payments_last_30_days"] == {
        "count": 3,
        "amount_paid": 3000 + 30001 + 3000,
        "amount_refunded": 500,
        "application_fees": 0,
    }
    assert report["failed_payment_outstanding"] == 0


def test_the_report_sums_each_currency_apart(api_at: Any) -> None:
    """A community charging in euros too reads the euros' summary with `?currency=eur`; each
    summary's money is that currency's alone (the euro payments were in no report)."""
    api: Api = api_at(APRIL)
    dollars = api.plan(prices={"month": 3000})
    euros = api.plan(currency="eur", prices={"month": 2000, "year": 24000})
    api.active(dollars, api.customer("Ada"))
    in_euros = api.active(euros, api.customer("Bo"))
    api.active(euros, api.customer("Cy"), billing_cycle="year")
    [paid] = api.payments(in_euros["id"])
    api.ok("POST", f"/v1/payments/{paid['id']}/refunds", {"amount": 700}, 201)

    usd = api.ok("GET", "/v1/reports/summary")
    eur = api.ok("GET", "/v1/reports/summary?currency=eur")

    assert (usd["currency"], usd["mrr"]) == ("usd", 3000)
    assert usd["payments_last_30_days"] == {
        "count": 1,
        "amount_paid": 3000,
        "amount_refunded": 0,
        "application_fees": 0,
    }
    assert (eur["currency"], eur["mrr"]) == ("eur", 2000 + 2000)
    assert eur["payments_last_30_days"] == {
        "count": 2,
        "amount_paid": 2000 + 24000,
        "amount_refunded": 700,
        "application_fees": 0,
    }
    assert api.ok("GET", "/v1/reports/summary?currency=gbp")["mrr"] == 0
    for bad in ("EUR", "xyz", "e"):
        refused = api.call("GET", f"/v1/reports/summary?currency={bad}")
        assert refused.status == 400, bad
        assert refused.body["error"]["details"][0]["field"] == "currency"


def test_billing_history_keeps_a_former_owner_and_a_removed_member(api_at: Any) -> None:
    """An ownership change or a removal does not take the subscription out of the profile's
    history: the payments it made and the time it was a member stay readable."""
    api: Api = api_at(APRIL)
    plan = api.plan()
    ada = api.customer("Ada")
    kid = api.dependent(ada["id"])
    bo = api.customer("Bo")
    sub = api.active(plan, ada, [kid["id"], bo["id"]])
    [activation] = api.payments(sub["id"])
    api.env.clock.advance(timedelta(days=2))
    api.ok(
        "PATCH",
        f"/v1/subscriptions/{sub['id']}",
        {"owner_id": bo["id"], "payment_method_id": bo["card"]},
    )
    api.ok("DELETE", f"/v1/subscriptions/{sub['id']}/members/{kid['id']}?at=now")
    trail = api.ok("GET", f"/v1/subscriptions/{sub['id']}/events?limit=100")["data"]
    [handover] = [e for e in trail if e["type"] == "subscription.updated"]
    assert handover["details"] == {
        "changed": ["owner_id", "payment_method_id"],
        "previous_owner_id": ada["id"],
        "owner_id": bo["id"],
        "previous_payment_method_id": ada["card"],
        "payment_method_id": bo["card"],
    }

    ada_history = api.ok("GET", f"/v1/profiles/{ada['id']}/billing-history")["data"]
    assert [(h["subscription"]["id"], h["role"], h["former"]) for h in ada_history] == [
        (sub["id"], "owner", True)
    ]
    [paid] = ada_history[0]["payments"]
    assert (paid["id"], paid["billed_to"]["profile_id"]) == (activation["id"], ada["id"])
    assert ada_history[0]["memberships"] == []

    kid_history = api.ok("GET", f"/v1/profiles/{kid['id']}/billing-history")["data"]
    assert [(h["subscription"]["id"], h["role"], h["former"]) for h in kid_history] == [
        (sub["id"], "member", True)
    ]
    assert kid_history[0]["memberships"] == [
        {"added_at": sub["members"][0]["added_at"], "removed_at": "2026-04-03T00:00:00Z"}
    ]
    assert api.ok("GET", f"/v1/profiles/{kid['id']}")["subscriptions"] == []
    assert api.ok("GET", f"/v1/profiles/{kid['id']}/access")["has_access"] is False
    bo_history = api.ok("GET", f"/v1/profiles/{bo['id']}/billing-history")["data"]
    assert [(h["role"], h["former"]) for h in bo_history] == [("owner", False)]
    assert bo_history[0]["memberships"] == [
        {"added_at": sub["members"][1]["added_at"], "removed_at": None}
    ]

    api.env.clock.advance(timedelta(days=1))
    back = {"members": [{"profile_id": kid["id"], "activation_fee": "waive"}]}
    api.ok("POST", f"/v1/subscriptions/{sub['id']}/members", back)
    [again] = api.ok("GET", f"/v1/profiles/{kid['id']}/billing-history")["data"]
    assert (again["role"], again["former"]) == ("member", False)
    assert [m["removed_at"] for m in again["memberships"]] == ["2026-04-03T00:00:00Z", None]
    assert api.ok("GET", f"/v1/profiles/{kid['id']}/access")["has_access"] is True
