"""payment_method.* events refresh the card our subscriptions show (and flag a detached one);
account.application.deauthorized flags the community; unknown accounts are ignored.
localstripe sends none of these: they are built and signed here as Stripe builds them."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.dynamodb.card_snapshots import CardSnapshots
from chalicelib.adapters.dynamodb.communities import community_key
from tests.integration.conftest import PLATFORM_KEY
from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url, stripe_for
from tests.support.webhook_flow import (
    Billing,
    billing,
    call,
    community,
    inactive_subscription,
    ok,
)

__all__ = ["billing", "localstripe_url"]


def result(billing: Billing, payload: dict[str, Any]) -> str:
    status, body = billing.deliver(payload)
    assert status == 200, body
    return str(body["result"])


def card_setup(billing: Billing) -> tuple[str, str, dict[str, Any], str]:
    """(community id, its key, an inactive subscription charging a card, the card's customer)."""
    community_id, key = community(billing.env.client, PLATFORM_KEY)
    sub = inactive_subscription(billing.env.client, key, billing.cutoff.target, "4242424242424242")
    method = stripe_for(billing.cutoff.target).v1.payment_methods.retrieve(
        sub["payment_method"]["id"]
    )
    return community_id, key, sub, str(method.customer)


def method_object(
    method_id: str, customer: str | None, exp_year: int, last4: str = "4242"
) -> dict[str, Any]:
    return {
        "id": method_id,
        "object": "payment_method",
        "billing_details": {"email": None, "name": None},
        "card": {
            "brand": "visa",
            "country": "US",
            "exp_month": 11,
            "exp_year": exp_year,
            "funding": "credit",
            "last4": last4,
        },
        "customer": customer,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def test_an_updated_card_shows_on_the_subscription_and_old_news_do_not_undo_it(
    billing: Billing,
) -> None:
    _, key, sub, customer = card_setup(billing)
    method_id = sub["payment_method"]["id"]
    newer = se.event(
        "payment_method.automatically_updated",
        method_object(method_id, customer, 2040, last4="1881"),
        created=2_000_000_000,
    )
    older = se.event(
        "payment_method.updated", method_object(method_id, customer, 2035), created=1_900_000_000
    )
    assert result(billing, newer) == "processed"
    shown = ok(billing.env.client, "get", f"/v1/subscriptions/{sub['id']}", key)
    assert (shown["payment_method"]["exp_year"], shown["payment_method"]["last4"]) == (2040, "1881")
    assert result(billing, older) == "processed"
    shown = ok(billing.env.client, "get", f"/v1/subscriptions/{sub['id']}", key)
    assert shown["payment_method"]["exp_year"] == 2040


def test_a_detached_card_is_flagged(billing: Billing) -> None:
    community_id, key, sub, customer = card_setup(billing)
    assert sub["payment_method"]["detached"] is False
    method_id = sub["payment_method"]["id"]
    detached = se.event(
        "payment_method.detached",
        method_object(method_id, None, 2034),
        previous_attributes={"customer": customer},
    )
    assert result(billing, detached) == "processed"
    snapshots = CardSnapshots(billing.env.container.dynamodb, billing.env.settings.table_name)
    snapshot = snapshots.find(community_id, method_id)
    assert snapshot is not None
    assert snapshot["detached_at"]
    # A late `updated` from before the detach does not clear the flag.
    late = se.event(
        "payment_method.updated",
        method_object(method_id, customer, 2039),
        created=detached["created"] - 5,
    )
    assert result(billing, late) == "processed"
    assert snapshots.find(community_id, method_id)["detached_at"]  # type: ignore[index]
    shown = ok(billing.env.client, "get", f"/v1/subscriptions/{sub['id']}", key)
    assert shown["payment_method"]["detached"] is True


def test_a_detach_in_the_same_second_as_an_update_is_not_lost(billing: Billing) -> None:
    """Stripe's `created` is whole seconds: an update and the detach can share it. The detach
    is final whatever the order (found by an outside probe: it was dropped as "older news")."""
    _, key, sub, customer = card_setup(billing)
    method_id = sub["payment_method"]["id"]
    moment = 2_000_000_000
    updated = se.event(
        "payment_method.updated", method_object(method_id, customer, 2039), created=moment
    )
    detached = se.event(
        "payment_method.detached",
        method_object(method_id, None, 2039),
        previous_attributes={"customer": customer},
        created=moment,
    )
    assert result(billing, updated) == "processed"
    assert result(billing, detached) == "processed"
    shown = ok(billing.env.client, "get", f"/v1/subscriptions/{sub['id']}", key)
    assert (shown["payment_method"]["detached"], shown["payment_method"]["exp_year"]) == (
        True,
        2039,
    )


def test_a_card_of_a_customer_we_do_not_know_is_ignored(billing: Billing) -> None:
    stranger = stripe_for(billing.cutoff.target).v1.customers.create(params={"email": "x@y.z"})
    event = se.event("payment_method.updated", method_object("pm_x", stranger.id, 2030))
    assert result(billing, event) == "ignored"


def test_a_card_event_from_an_unknown_connected_account_is_ignored(billing: Billing) -> None:
    event = se.event(
        "payment_method.updated", method_object("pm_y", "cus_y", 2030), account="acct_stranger"
    )
    assert result(billing, event) == "ignored"


def deauthorization(account: str) -> dict[str, Any]:
    application = {"id": "ca_membership", "object": "application", "name": "Membership billing"}
    return se.event("account.application.deauthorized", application, account=account)


def flag_of(billing: Billing, community_id: str) -> str | None:
    item = billing.env.container.dynamodb.get_item(
        TableName=billing.env.settings.table_name, Key=community_key(community_id)
    )["Item"]
    flag = item.get("stripe_deauthorized_at")
    return str(flag["S"]) if flag else None


def test_a_deauthorization_flags_the_community_of_that_account(billing: Billing) -> None:
    community_id, _ = community(billing.env.client, PLATFORM_KEY, "acct_leaving")
    assert result(billing, deauthorization("acct_leaving")) == "processed"
    assert flag_of(billing, community_id) is not None


def test_a_late_deauthorization_after_a_reconnect_to_another_account_is_ignored(
    billing: Billing,
) -> None:
    community_id, _ = community(billing.env.client, PLATFORM_KEY, "acct_old")
    ok(
        billing.env.client,
        "patch",
        f"/v1/communities/{community_id}",
        PLATFORM_KEY,
        {"stripe_account_id": "acct_new"},
    )
    assert result(billing, deauthorization("acct_old")) == "ignored"
    assert flag_of(billing, community_id) is None


def test_a_deauthorization_of_an_unknown_account_is_ignored(billing: Billing) -> None:
    assert result(billing, deauthorization("acct_nobody")) == "ignored"


def test_a_deauthorized_community_is_not_charged_until_it_reconnects(billing: Billing) -> None:
    client = billing.env.client
    community_id, key = community(client, PLATFORM_KEY, "acct_returning")
    sub = inactive_subscription(client, key, billing.cutoff.target, "4242424242424242")
    assert result(billing, deauthorization("acct_returning")) == "processed"

    status, answer = call(client, "post", f"/v1/subscriptions/{sub['id']}/activate", key, {})
    assert status == 409, answer
    assert "disconnected" in answer["error"]["message"]
    payments = ok(client, "get", f"/v1/payments?subscription_id={sub['id']}", key)
    assert payments["data"] == []  # refused before anything was written or charged

    ok(
        client,
        "patch",
        f"/v1/communities/{community_id}",
        PLATFORM_KEY,
        {"stripe_account_id": "acct_returning"},
    )
    assert flag_of(billing, community_id) is None
    activated = ok(client, "post", f"/v1/subscriptions/{sub['id']}/activate", key, {})
    assert activated["status"] == "active"


def test_a_card_detached_through_our_api_is_flagged_and_never_charged(billing: Billing) -> None:
    """Our own DELETE of a card flags its snapshot at once (Stripe's `payment_method.detached`
    comes later, if at all: localstripe sends none), so the subscription shows it detached and
    activating with it is a 400 that charges nothing (Stripe would refuse a detached card; here
    localstripe took the money)."""
    client = billing.env.client
    _, key, sub, _ = card_setup(billing)
    method_id = sub["payment_method"]["id"]
    owner = sub["owner_id"]

    status, answer = call(
        client, "delete", f"/v1/profiles/{owner}/payment-methods/{method_id}", key
    )
    assert status == 204, answer

    shown = ok(client, "get", f"/v1/subscriptions/{sub['id']}", key)
    assert shown["payment_method"]["detached"] is True
    status, answer = call(client, "post", f"/v1/subscriptions/{sub['id']}/activate", key, {})
    assert status == 400, answer
    assert answer["error"]["details"][0]["field"] == "payment_method_id"
    assert ok(client, "get", f"/v1/payments?subscription_id={sub['id']}", key)["data"] == []


def test_a_refund_while_the_account_is_disconnected_is_a_409_until_it_reconnects(
    billing: Billing,
) -> None:
    client = billing.env.client
    community_id, key = community(client, PLATFORM_KEY, "acct_refunding")
    sub = inactive_subscription(client, key, billing.cutoff.target, "4242424242424242")
    ok(client, "post", f"/v1/subscriptions/{sub['id']}/activate", key, {})
    [payment] = ok(client, "get", f"/v1/payments?subscription_id={sub['id']}", key)["data"]
    assert result(billing, deauthorization("acct_refunding")) == "processed"

    status, answer = call(client, "post", f"/v1/payments/{payment['id']}/refunds", key, {})

    assert status == 409, answer
    assert "acct_refunding" in answer["error"]["message"]
    after = ok(client, "get", f"/v1/payments/{payment['id']}", key)
    assert (after["amount_refunded"], after["amount_refund_pending"]) == (0, 0)
    ok(
        client,
        "patch",
        f"/v1/communities/{community_id}",
        PLATFORM_KEY,
        {"stripe_account_id": "acct_refunding"},
    )
    refund = ok(client, "post", f"/v1/payments/{payment['id']}/refunds", key, {})
    assert (refund["status"], refund["amount"]) == ("succeeded", payment["amount_paid"])
