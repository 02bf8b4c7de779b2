"""A subscription of 1,000 members through its whole life (moto + localstripe, own table).

DynamoDB takes at most 100 items in one transaction: no write may grow with the member count.
This module has its own moto table (billing_env is per module), because moto copies the whole
table in every transaction.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.adapters.dynamodb.items import from_item
from chalicelib.adapters.dynamodb.subscriptions import subscription_key
from tests.integration.conftest import TABLE_NAME, Env
from tests.support.billing_api import Api, at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["billing_env", "localstripe_url"]

MEMBERS = int(os.environ.get("BIG_MEMBERS", "1000"))
UNIT = 100


@pytest.fixture
def api(billing_env: Env, localstripe_url: str) -> Api:
    return Api(billing_env, localstripe_url).new()


def dependents(api: Api, holder_id: str, count: int) -> list[str]:
    """`count` dependents of the holder, stored straight through the repository (the API
    round trip costs ~50 ms a profile on moto; one is made through the API as a check)."""
    profiles = api.env.container.profiles
    first = api.dependent(holder_id, "Kid 0")["id"]
    model = profiles.get(api.community_id, first)
    made = [first]
    for n in range(1, count):
        profile = replace(model, id=f"prof_{n:020x}", name=f"Kid {n}")
        profiles.create(profile)
        made.append(profile.id)
    return made


def link_statuses(api: Api, subscription_id: str) -> Counter[tuple[str, str]]:
    """(role, status) of every live link item of the subscription, read from the table."""
    client = api.env.container.dynamodb
    found: Counter[tuple[str, str]] = Counter()
    for status in ("inactive", "active", "failed_payment", "expiring", "cancelled"):
        request: dict[str, Any] = {
            "TableName": TABLE_NAME,
            "IndexName": "gsi3",
            "KeyConditionExpression": "gsi3pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"C#{api.community_id}#SUBSTATUS#{status}"}},
        }
        while True:
            page = client.query(**request)
            for item in page.get("Items", []):
                if item["subscription_id"]["S"] == subscription_id:
                    found[(item["role"]["S"], item["status"]["S"])] += 1
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found


def item_size(api: Api, subscription_id: str) -> int:
    """Bytes of the stored subscription item (names + values, as DynamoDB counts them)."""
    raw = api.env.container.dynamodb.get_item(
        TableName=TABLE_NAME, Key=subscription_key(api.community_id, subscription_id)
    )["Item"]
    item = from_item(raw)
    return sum(len(name) + len(str(value).encode()) for name, value in item.items())


def access(api: Api, profile_id: str) -> tuple[bool, list[str]]:
    answer = api.ok("GET", f"/v1/profiles/{profile_id}/access")
    return answer["has_access"], answer["subscription_ids"]


@pytest.mark.timeout(900)  # moto deep-copies the table per transaction entry: slow on a busy box
def test_a_subscription_of_1000_members_lives_its_whole_life(api: Api) -> None:
    env = api.env
    plan = api.plan(prices={"month": UNIT})
    owner = api.customer("Ada")
    kids = dependents(api, owner["id"], MEMBERS)
    members, newcomer = [owner["id"], *kids[: MEMBERS - 1]], kids[MEMBERS - 1]

    sub = api.subscription(plan, owner, members)
    assert len(sub["members"]) == MEMBERS
    assert link_statuses(api, sub["id"]) == {
        ("owner", "inactive"): 1,
        ("member", "inactive"): MEMBERS,
    }

    active = api.ok("POST", f"/v1/subscriptions/{sub['id']}/activate", {})
    assert active["status"] == "active"
    [payment] = api.payments(sub["id"])
    assert (payment["status"], payment["total"]) == ("succeeded", MEMBERS * UNIT)
    assert link_statuses(api, sub["id"]) == {("owner", "active"): 1, ("member", "active"): MEMBERS}
    assert access(api, kids[MEMBERS // 2]) == (True, [sub["id"]])
    assert access(api, newcomer) == (False, [])

    gone = kids[0]
    api.ok("DELETE", f"/v1/subscriptions/{sub['id']}/members/{gone}?at=now")
    assert access(api, gone) == (False, [])
    added = api.ok(
        "POST", f"/v1/subscriptions/{sub['id']}/members", {"members": [{"profile_id": newcomer}]}
    )
    assert len(added["subscription"]["members"]) == MEMBERS
    assert access(api, newcomer) == (True, [sub["id"]])
    assert link_statuses(api, sub["id"]) == {("owner", "active"): 1, ("member", "active"): MEMBERS}

    period_end = at(active["current_period"]["end"])
    env.clock.advance_to(period_end + timedelta(minutes=1))
    assert env.container.scheduled.renew(api.community_id, sub["id"], env.clock.now(), None) == (
        "renewed"
    )
    renewal = next(p for p in api.payments(sub["id"]) if p["kind"] == "renewal")
    assert (renewal["status"], renewal["total"]) == ("succeeded", MEMBERS * UNIT)

    declining = api.card(owner["id"], "4000000000000341")
    api.ok("PATCH", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": declining})
    env.clock.advance_to(period_end + timedelta(days=31, minutes=2))
    assert env.container.scheduled.renew(api.community_id, sub["id"], env.clock.now(), None) == (
        "renewal_failed"
    )
    assert link_statuses(api, sub["id"]) == {
        ("owner", "failed_payment"): 1,
        ("member", "failed_payment"): MEMBERS,
    }
    assert access(api, kids[MEMBERS // 2]) == (False, [])
    shown = api.ok("GET", f"/v1/subscriptions/{sub['id']}")  # item 11: when it ends unless paid
    grace = timedelta(days=plan["failed_payment_grace_days"])
    assert at(shown["cancel_at"]) == at(shown["failed_at"]) + grace

    back = api.ok(
        "POST", f"/v1/subscriptions/{sub['id']}/reactivate", {"payment_method_id": owner["card"]}
    )
    assert back["status"] == "active"
    reactivation = next(p for p in api.payments(sub["id"]) if p["kind"] == "reactivation")
    assert (reactivation["status"], reactivation["total"]) == ("succeeded", MEMBERS * UNIT)
    assert access(api, kids[MEMBERS // 2]) == (True, [sub["id"]])

    expiring = api.ok("POST", f"/v1/subscriptions/{sub['id']}/cancel", {"at": "period_end"})
    assert expiring["status"] == "expiring"
    assert link_statuses(api, sub["id"]) == {
        ("owner", "expiring"): 1,
        ("member", "expiring"): MEMBERS,
    }
    env.clock.advance_to(at(expiring["cancel_at"]) + timedelta(minutes=1))
    assert env.container.scheduled.expire(api.community_id, sub["id"], env.clock.now()) == (
        "expired"
    )
    assert link_statuses(api, sub["id"]) == {
        ("owner", "cancelled"): 1,
        ("member", "cancelled"): MEMBERS,
    }
    assert access(api, kids[MEMBERS // 2]) == (False, [])
    assert item_size(api, sub["id"]) < 150_000
