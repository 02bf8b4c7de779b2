"""`GET /v1/profiles/{id}/access` answers as of now (DESIGN.md section 2: a member removed at
period end is "still a member until then"): from the period's end on, not from the renewal
that drops the member's link, which may run later (a sweep's delay, a rate-paced backlog)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.billing_api import Api, api_at, at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def test_a_member_removed_at_period_end_has_no_access_once_it_ended(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    ada = api.customer("Ada")
    bo = api.customer("Bo", card=None)
    sub = api.active(api.plan(), ada, [ada["id"], bo["id"]])
    api.ok("DELETE", f"/v1/subscriptions/{sub['id']}/members/{bo['id']}?at=period_end")
    period_end = at(sub["current_period"]["end"])
    api.env.clock.advance_to(period_end - timedelta(minutes=1))
    assert api.ok("GET", f"/v1/profiles/{bo['id']}/access")["has_access"] is True  # until then

    api.env.clock.advance_to(period_end + timedelta(minutes=30))  # the renewal has not run

    assert api.ok("GET", f"/v1/profiles/{bo['id']}/access") == {
        "profile_id": bo["id"],
        "has_access": False,
        "reason": None,
        "subscription_ids": [],
    }
    owner = api.ok("GET", f"/v1/profiles/{ada['id']}/access")
    assert (owner["has_access"], owner["subscription_ids"]) == (True, [sub["id"]])
    assert api.ok("GET", "/v1/reports/summary")["members_with_access"] == 1  # the same answer
    restore = api.call("POST", f"/v1/subscriptions/{sub['id']}/members/{bo['id']}/restore", {})
    assert restore.status == 409, restore.body
    assert api.env.container.scheduled.renew(api.community_id, sub["id"], api.env.clock.now()) == (
        "renewed"
    )
    assert api.ok("GET", f"/v1/profiles/{bo['id']}/access")["has_access"] is False
