"""Payment methods: the exact requests our Stripe adapter sends, on the platform account and on
a community's connected account (localstripe ignores Stripe-Account, so a recording server
answers here; tests/e2e/test_admin_e2e.py runs the same flow against localstripe)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb.profile_links import put_link
from chalicelib.adapters.dynamodb.transactions import transact
from tests.integration.admin_helpers import Tenant, call, new_community, shared_env
from tests.integration.admin_stripe_recorder import FakeStripe, fake_stripe
from tests.integration.conftest import Env

__all__ = ["shared_env"]


@pytest.fixture
def stripe_env(shared_env: Env) -> Iterator[tuple[Env, FakeStripe]]:
    with fake_stripe() as stripe:
        settings = dataclasses.replace(shared_env.settings, stripe_api_base=stripe.url)
        container = bootstrap.Container(settings, clock=shared_env.clock)
        bootstrap.override_container(container)
        try:
            yield dataclasses.replace(shared_env, container=container, settings=settings), stripe
        finally:
            bootstrap.override_container(shared_env.container)


def _customer(env: Env, tenant: Tenant) -> str:
    body = {"kind": "customer", "name": "Ann Lee", "email": "ann@example.com"}
    reply = call(env, "POST", "/v1/profiles", body, key=tenant.key)
    return str(reply.body["id"])


def test_connected_account_requests_carry_the_stripe_account_header(
    stripe_env: tuple[Env, FakeStripe],
) -> None:
    env, stripe = stripe_env
    tenant = new_community(env, stripe_account_id="acct_conn1")
    profile = _customer(env, tenant)
    stripe.payment_methods.update(pm_a=None, pm_b=None)
    path = f"/v1/profiles/{profile}/payment-methods"
    reply = call(env, "POST", path, {"stripe_payment_method_id": "pm_a"}, key=tenant.key)
    assert reply.status == 201
    assert reply.body == {
        "id": "pm_a",
        "type": "card",
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
    }
    create, retrieve, attach = stripe.requests
    assert (create.method, create.path) == ("POST", "/v1/customers")
    assert create.headers["stripe-account"] == "acct_conn1"
    assert create.headers["authorization"] == "Bearer sk_test_integration"
    assert create.headers["idempotency-key"].startswith(f"customer-{profile}-acct_conn1-")
    assert create.form == {
        "name": "Ann Lee",
        "email": "ann@example.com",
        "metadata[community_id]": tenant.id,
        "metadata[profile_id]": profile,
    }
    # Whose card it is first: another customer's is refused, never moved.
    assert (retrieve.method, retrieve.path) == ("GET", "/v1/payment_methods/pm_a")
    assert retrieve.headers["stripe-account"] == "acct_conn1"
    assert (attach.method, attach.path) == ("POST", "/v1/payment_methods/pm_a/attach")
    assert attach.headers["stripe-account"] == "acct_conn1"
    assert attach.form == {"customer": "cus_rec1"}
    # Second card: the customer is reused, not created again.
    assert (
        call(env, "POST", path, {"stripe_payment_method_id": "pm_b"}, key=tenant.key).status == 201
    )
    assert [r.path for r in stripe.requests[3:]] == [
        "/v1/payment_methods/pm_b",
        "/v1/payment_methods/pm_b/attach",
    ]
    listed = call(env, "GET", path, key=tenant.key)
    assert [c["id"] for c in listed.body["data"]] == ["pm_a", "pm_b"]
    assert listed.body["has_more"] is False
    lister = stripe.requests[-1]
    assert lister.query == {"customer": "cus_rec1", "type": "card", "limit": "20"}
    assert lister.headers["stripe-account"] == "acct_conn1"
    setup = call(env, "POST", f"/v1/profiles/{profile}/setup-intents", key=tenant.key)
    assert (setup.status, setup.body) == (201, {"client_secret": "seti_1_secret_x"})
    intent = stripe.requests[-1]
    assert intent.path == "/v1/setup_intents" and intent.headers["stripe-account"] == "acct_conn1"
    assert intent.form["customer"] == "cus_rec1" and intent.form["usage"] == "off_session"
    assert call(env, "DELETE", f"{path}/pm_b", key=tenant.key).status == 204
    assert [r.path for r in stripe.requests[-2:]] == [
        "/v1/payment_methods/pm_b",
        "/v1/payment_methods/pm_b/detach",
    ]
    assert all(r.headers["stripe-account"] == "acct_conn1" for r in stripe.requests)


def test_platform_account_has_no_header_and_a_new_account_gets_a_new_customer(
    stripe_env: tuple[Env, FakeStripe],
) -> None:
    env, stripe = stripe_env
    tenant = new_community(env)
    profile = _customer(env, tenant)
    stripe.payment_methods.update(pm_p=None, pm_q=None)
    path = f"/v1/profiles/{profile}/payment-methods"
    assert (
        call(env, "POST", path, {"stripe_payment_method_id": "pm_p"}, key=tenant.key).status == 201
    )
    assert all("stripe-account" not in r.headers for r in stripe.requests)
    assert stripe.requests[0].headers["idempotency-key"].startswith(f"customer-{profile}-platform-")
    # The community connects its own account: cards now live on a customer there.
    call(env, "PATCH", f"/v1/communities/{tenant.id}", {"stripe_account_id": "acct_new"})
    assert call(env, "GET", path, key=tenant.key).body["data"] == []
    assert (
        call(env, "POST", path, {"stripe_payment_method_id": "pm_q"}, key=tenant.key).status == 201
    )
    create = [r for r in stripe.requests if r.path == "/v1/customers"]
    assert len(create) == 2 and create[1].headers["stripe-account"] == "acct_new"


def test_a_customer_whose_first_create_lost_its_answer_is_created_with_the_details_now(
    stripe_env: tuple[Env, FakeStripe],
) -> None:
    """Stripe answers a reused idempotency key with other parameters 400 `idempotency_error`
    for 24 hours: a profile whose name or email changed after a lost answer must not reuse it."""
    env, stripe = stripe_env
    tenant = new_community(env)
    stripe.payment_methods.update(pm_1=None, pm_2=None)
    same, changed = _customer(env, tenant), _customer(env, tenant)
    for profile in (same, changed):
        stripe.lose_answers = 1
        path = f"/v1/profiles/{profile}/payment-methods"
        lost = call(env, "POST", path, {"stripe_payment_method_id": "pm_1"}, key=tenant.key)
        assert lost.status == 503, lost.body
        stripe.payment_methods["pm_1"] = None
    fixed = {"email": "ann.lee@example.com"}
    assert call(env, "PATCH", f"/v1/profiles/{changed}", fixed, key=tenant.key).status == 200
    sent_before = len(stripe.requests)

    # Unchanged: the same request, same key; Stripe answers with the customer it made.
    again = f"/v1/profiles/{same}/payment-methods"
    retried = call(env, "POST", again, {"stripe_payment_method_id": "pm_1"}, key=tenant.key)
    # Changed: a request of its own (the first one's customer stays unused on Stripe).
    path = f"/v1/profiles/{changed}/payment-methods"
    reply = call(env, "POST", path, {"stripe_payment_method_id": "pm_2"}, key=tenant.key)

    assert retried.status == 201, retried.body
    assert reply.status == 201, reply.body
    creates = [r for r in stripe.requests[sent_before:] if r.path == "/v1/customers"]
    first_keys = [r.headers["idempotency-key"] for r in stripe.requests[:sent_before]]
    assert creates[0].headers["idempotency-key"] == first_keys[0]
    assert creates[1].headers["idempotency-key"] not in first_keys
    assert creates[1].form["email"] == "ann.lee@example.com"
    assert len(creates[1].headers["idempotency-key"]) <= 255
    assert stripe.payment_methods == {"pm_1": "cus_rec1", "pm_2": "cus_rec3"}


def test_a_stripe_answer_the_card_calls_do_not_know_is_never_a_500(
    stripe_env: tuple[Env, FakeStripe],
) -> None:
    env, stripe = stripe_env
    tenant = new_community(env)
    profile = _customer(env, tenant)
    path = f"/v1/profiles/{profile}/payment-methods"
    key_refused = {"error": {"type": "idempotency_error", "message": "Keys for idempotent..."}}
    unknown = {"error": {"type": "something_new", "message": "?"}}
    stripe.fail_next += [(400, key_refused), (418, unknown)]

    refused = call(env, "POST", path, {"stripe_payment_method_id": "pm_x"}, key=tenant.key)
    strange = call(env, "POST", path, {"stripe_payment_method_id": "pm_x"}, key=tenant.key)

    assert (refused.status, refused.body["error"]["type"]) == (409, "conflict"), refused.body
    assert strange.status == 503, strange.body


def test_detach_is_refused_while_a_live_subscription_charges_the_card(
    stripe_env: tuple[Env, FakeStripe],
) -> None:
    env, stripe = stripe_env
    tenant = new_community(env)
    profile = _customer(env, tenant)
    stripe.payment_methods.update(pm_live=None, pm_old=None, pm_other="cus_someone_else")
    path = f"/v1/profiles/{profile}/payment-methods"
    for pm in ("pm_live", "pm_old"):
        assert (
            call(env, "POST", path, {"stripe_payment_method_id": pm}, key=tenant.key).status == 201
        )
    table, now = env.settings.table_name, env.clock.now()
    transact(
        env.container.dynamodb,
        [
            put_link(
                table, tenant.id, profile, "sub_live", "owner", "failed_payment", now, "pm_live"
            ),
            put_link(table, tenant.id, profile, "sub_gone", "owner", "cancelled", now, "pm_old"),
        ],
    )
    refused = call(env, "DELETE", f"{path}/pm_live", key=tenant.key)
    assert (refused.status, refused.body["error"]["type"]) == (409, "conflict")
    assert "sub_live" in refused.body["error"]["message"]
    assert stripe.payment_methods["pm_live"] is not None
    assert call(env, "DELETE", f"{path}/pm_old", key=tenant.key).status == 204
    assert stripe.payment_methods["pm_old"] is None
    # Somebody else's card, an unknown card, a malformed id: 404, nothing detached.
    for pm in ("pm_other", "pm_unknown", "card_1"):
        assert call(env, "DELETE", f"{path}/{pm}", key=tenant.key).status == 404
    assert stripe.payment_methods["pm_other"] == "cus_someone_else"


def test_stripe_refusals_and_outages_map_to_clear_errors(
    stripe_env: tuple[Env, FakeStripe],
) -> None:
    env, stripe = stripe_env
    tenant = new_community(env)
    profile = _customer(env, tenant)
    path = f"/v1/profiles/{profile}/payment-methods"
    unknown = call(env, "POST", path, {"stripe_payment_method_id": "pm_nope"}, key=tenant.key)
    assert unknown.status == 400
    assert unknown.body["error"]["details"][0]["field"] == "stripe_payment_method_id"
    stripe.payment_methods["pm_theirs"] = "cus_someone_else"  # another customer's card
    theirs = call(env, "POST", path, {"stripe_payment_method_id": "pm_theirs"}, key=tenant.key)
    assert theirs.status == 400
    assert "another customer" in theirs.body["error"]["details"][0]["message"]
    assert stripe.payment_methods["pm_theirs"] == "cus_someone_else"
    assert not any(r.path.endswith("/attach") for r in stripe.requests)
    stripe.payment_methods["pm_declined"] = None
    stripe.fail_next.append(
        (
            402,
            {
                "error": {
                    "type": "card_error",
                    "code": "card_declined",
                    "message": "Your card was declined.",
                }
            },
        )
    )
    declined = call(env, "POST", path, {"stripe_payment_method_id": "pm_declined"}, key=tenant.key)
    assert declined.status == 400
    assert declined.body["error"]["details"][0] == {
        "field": "stripe_payment_method_id",
        "message": "Your card was declined.",
    }
    stripe.fail_next.append((429, {"error": {"type": "invalid_request_error", "message": "slow"}}))
    assert call(env, "GET", path, key=tenant.key).status == 429
    stripe.fail_next.append((500, {"error": {"type": "api_error", "message": "boom"}}))
    assert call(env, "GET", path, key=tenant.key).status == 503


def test_dependents_have_no_payment_methods(stripe_env: tuple[Env, FakeStripe]) -> None:
    env, stripe = stripe_env
    tenant = new_community(env)
    holder = _customer(env, tenant)
    kid = call(
        env,
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "Kid", "account_holder_id": holder},
        key=tenant.key,
    ).body["id"]
    for method, suffix, body in (
        ("POST", "payment-methods", {"stripe_payment_method_id": "pm_1"}),
        ("GET", "payment-methods", None),
        ("POST", "setup-intents", None),
        ("DELETE", "payment-methods/pm_1", None),
    ):
        reply = call(env, method, f"/v1/profiles/{kid}/{suffix}", body, key=tenant.key)
        assert reply.status == 400, (method, suffix)
        assert reply.body["error"]["details"][0]["field"] == "profile_id"
    assert stripe.requests == []
