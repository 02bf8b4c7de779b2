"""Issue 11 (amounts Stripe would refuse) through the HTTP contract: currencies and free plans."""

from __future__ import annotations

from tests.integration.admin_helpers import call, new_community, shared_env
from tests.integration.conftest import Env

__all__ = ["shared_env"]


def test_unsupported_currencies_are_refused(shared_env: Env) -> None:
    env = shared_env
    reply = call(env, "POST", "/v1/communities", {"name": "Nowhere", "currency": "zzz"})
    assert reply.status == 400, reply.body
    tenant = new_community(env)
    plan = call(
        env,
        "POST",
        "/v1/plans",
        {"name": "Gold", "currency": "zzz", "prices": {"month": 1500}},
        key=tenant.key,
    )
    assert plan.status == 400, plan.body
    assert "currency" in str(plan.body)


def test_three_decimal_amounts_must_end_in_zero(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env, currency="kwd")
    odd = call(env, "POST", "/v1/plans", {"name": "K", "prices": {"month": 1255}}, key=tenant.key)
    assert odd.status == 400, odd.body
    fee = call(
        env,
        "POST",
        "/v1/plans",
        {"name": "K", "prices": {"month": 1250}, "activation_fee": 5},
        key=tenant.key,
    )
    assert fee.status == 400, fee.body
    ok = call(env, "POST", "/v1/plans", {"name": "K", "prices": {"month": 1250}}, key=tenant.key)
    assert ok.status == 201, ok.body
    assert ok.body["currency"] == "kwd"
    yen = new_community(env, currency="jpy")
    plan = call(env, "POST", "/v1/plans", {"name": "Y", "prices": {"month": 995}}, key=yen.key)
    assert plan.status == 201 and plan.body["prices"] == {"month": 995}


def test_a_plan_with_an_activation_fee_is_not_free(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    fee_only = call(
        env,
        "POST",
        "/v1/plans",
        {"name": "Fee", "prices": {"month": 0, "year": 0}, "activation_fee": 5000},
        key=tenant.key,
    ).body
    assert fee_only["free"] is False
    nothing = call(
        env, "POST", "/v1/plans", {"name": "Zero", "prices": {"month": 0}}, key=tenant.key
    ).body
    assert nothing["free"] is True
