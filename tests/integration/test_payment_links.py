"""Pay-now links through the API (issue 15): moto in-process, localstripe, chalice test client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.billing_api import Api, api_at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)  # a 30-day period: Apr 1 -> May 1
MAY = datetime(2026, 5, 1, tzinfo=UTC)


def failed_subscription(api: Api, grace_days: int = 14) -> tuple[dict[str, Any], dict[str, Any]]:
    """(owner, subscription): the renewal on May 1 was declined (card 4000000000000341)."""
    plan = api.plan(
        prices={"month": 3000}, retry_schedule_days=[3], failed_payment_grace_days=grace_days
    )
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    bad = api.card(owner["id"], "4000000000000341")
    api.ok("PATCH", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": bad})
    period_end = datetime.fromisoformat(sub["current_period"]["end"].replace("Z", "+00:00"))
    api.env.clock.advance_to(period_end)
    outcome = api.env.container.scheduled.renew(api.community_id, sub["id"], period_end)
    assert outcome == "renewal_failed"
    return owner, api.ok("GET", f"/v1/subscriptions/{sub['id']}")


def test_issue_answers_the_url_and_min_of_cancel_at_and_7_days(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api, grace_days=14)
    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/payment-link", {})
    assert reply.status == 201, reply.body
    assert set(reply.body) == {"url", "expires_at"}
    assert reply.body["url"].startswith(f"{api.env.settings.public_url}/pay/")
    assert reply.body["expires_at"] == "2026-05-08T00:00:00Z"  # 7 days before the 14-day grace

    other: Api = api_at(APRIL)
    _, short = failed_subscription(other, grace_days=5)
    link = other.ok("POST", f"/v1/subscriptions/{short['id']}/payment-link", {}, 201)
    assert link["expires_at"] == short["cancel_at"] == "2026-05-06T00:00:00Z"


def test_issue_is_409_unless_failed_payment_and_404_for_an_unknown_subscription(
    api_at: Any,
) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan()
    owner = api.customer("Bo")
    sub = api.active(plan, owner)
    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/payment-link", {})
    assert reply.status == 409 and reply.body["error"]["type"] == "conflict"
    reply = api.call("POST", "/v1/subscriptions/sub_nope/payment-link", {})
    assert reply.status == 404 and reply.body["error"]["type"] == "not_found"
    other = api.new()
    _, failed = failed_subscription(other)
    reply = api.call("POST", f"/v1/subscriptions/{failed['id']}/payment-link", {})
    assert reply.status == 404  # another community's subscription


def test_a_new_link_invalidates_the_old_one_in_dynamodb(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    path = f"/v1/subscriptions/{sub['id']}/payment-link"
    first = api.ok("POST", path, {}, 201)["url"].rsplit("/", 1)[1]
    second = api.ok("POST", path, {}, 201)["url"].rsplit("/", 1)[1]
    links = api.env.container.payment_links
    now = api.env.clock.now()
    assert links.open(first, now).state == "expired"
    assert links.open(second, now).state == "payable"
    assert links.open(second, now + timedelta(days=7)).state == "expired"
