"""A customer's name and email reach their Stripe customer (Stripe's receipts and its
authentication emails go to the address on the customer), all or nothing: Stripe down is a 503
and nothing changes (docs/API.md, Profiles)."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import PLATFORM_KEY
from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url, new_card, stripe_for
from tests.support.webhook_flow import Billing, billing, call, community, ok

__all__ = ["billing", "localstripe_url"]


def customer_with_card(billing: Billing, key: str) -> tuple[dict[str, Any], str]:
    """A customer profile whose Stripe customer was made by attaching a card; its customer id."""
    client = billing.env.client
    profile = ok(
        client,
        "post",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": "Ada", "email": "ada@example.com"},
    )
    method_id = new_card(stripe_for(billing.cutoff.target), "4242424242424242")
    path = f"/v1/profiles/{profile['id']}/payment-methods"
    ok(client, "post", path, key, {"stripe_payment_method_id": method_id})
    customer = stripe_for(billing.cutoff.target).v1.payment_methods.retrieve(method_id).customer
    return profile, str(customer)


def test_a_changed_email_and_name_reach_the_stripe_customer(billing: Billing) -> None:
    _, key = community(billing.env.client, PLATFORM_KEY)
    profile, customer_id = customer_with_card(billing, key)

    changed = ok(
        billing.env.client,
        "patch",
        f"/v1/profiles/{profile['id']}",
        key,
        {"email": "ada.new@example.com", "name": "Ada King"},
    )

    assert (changed["email"], changed["name"]) == ("ada.new@example.com", "Ada King")
    customer = stripe_for(billing.cutoff.target).v1.customers.retrieve(customer_id)
    assert (customer.email, customer.name) == ("ada.new@example.com", "Ada King")


def test_stripe_down_is_a_503_and_the_email_stays_as_it_was(billing: Billing) -> None:
    client = billing.env.client
    _, key = community(client, PLATFORM_KEY)
    profile, customer_id = customer_with_card(billing, key)
    billing.cutoff.down_next("POST", f"/v1/customers/{customer_id}", times=3)

    status, answer = call(
        client, "patch", f"/v1/profiles/{profile['id']}", key, {"email": "ada.new@example.com"}
    )

    assert status == 503, answer
    assert ok(client, "get", f"/v1/profiles/{profile['id']}", key)["email"] == "ada@example.com"
    customer = stripe_for(billing.cutoff.target).v1.customers.retrieve(customer_id)
    assert customer.email == "ada@example.com"
    # Asked again once Stripe answers, the change goes through on both sides.
    billing.cutoff.armed.clear()
    ok(client, "patch", f"/v1/profiles/{profile['id']}", key, {"email": "ada.new@example.com"})
    customer = stripe_for(billing.cutoff.target).v1.customers.retrieve(customer_id)
    assert customer.email == "ada.new@example.com"


def test_a_profile_without_a_stripe_customer_changes_without_stripe(billing: Billing) -> None:
    client = billing.env.client
    _, key = community(client, PLATFORM_KEY)
    profile = ok(
        client, "post", "/v1/profiles", key, {"kind": "customer", "name": "Bo", "email": "b@x.org"}
    )
    seen = len(billing.cutoff.seen)

    changed = ok(client, "patch", f"/v1/profiles/{profile['id']}", key, {"email": "bo@x.org"})

    assert changed["email"] == "bo@x.org"
    assert billing.cutoff.seen[seen:] == []


def customer_deleted(billing: Billing, customer_id: str) -> dict[str, Any]:
    """Stripe deletes the customer (e.g. in its dashboard) and sends `customer.deleted`."""
    gone = stripe_for(billing.cutoff.target).v1.customers.retrieve(customer_id).to_dict()
    stripe_for(billing.cutoff.target).v1.customers.delete(customer_id)
    return se.event("customer.deleted", {**gone, "deleted": True})


def deliver(billing: Billing, payload: dict[str, Any]) -> str:
    status, body = billing.deliver(payload)
    assert status == 200, body
    return str(body["result"])


def test_a_customer_deleted_on_stripe_is_forgotten_and_the_next_card_gets_a_new_one(
    billing: Billing,
) -> None:
    """The profile named a customer Stripe no longer has: every card it was given answered
    400 ("Not Found"), so neither the operator nor the pay page could ever put a card on it
    again. Forgotten on `customer.deleted`, the next card makes a new customer."""
    client = billing.env.client
    _, key = community(client, PLATFORM_KEY)
    profile, customer_id = customer_with_card(billing, key)

    assert deliver(billing, customer_deleted(billing, customer_id)) == "processed"

    path = f"/v1/profiles/{profile['id']}/payment-methods"
    assert ok(client, "get", path, key)["data"] == []
    method_id = new_card(stripe_for(billing.cutoff.target), "4242424242424242")
    ok(client, "post", path, key, {"stripe_payment_method_id": method_id})
    [card] = ok(client, "get", path, key)["data"]
    assert card["id"] == method_id
    new_customer = stripe_for(billing.cutoff.target).v1.payment_methods.retrieve(method_id)
    assert new_customer.customer not in (None, customer_id)


def test_a_deleted_customer_the_profile_no_longer_uses_changes_nothing(billing: Billing) -> None:
    client = billing.env.client
    community_id, key = community(client, PLATFORM_KEY)
    profile, customer_id = customer_with_card(billing, key)
    ours = {"community_id": community_id, "profile_id": profile["id"]}
    stranger = stripe_for(billing.cutoff.target).v1.customers.create(
        params={"email": "s@x.org", "metadata": ours}
    )

    assert deliver(billing, customer_deleted(billing, stranger.id)) == "ignored"

    [card] = ok(client, "get", f"/v1/profiles/{profile['id']}/payment-methods", key)["data"]
    owner = stripe_for(billing.cutoff.target).v1.payment_methods.retrieve(card["id"]).customer
    assert owner == customer_id
