"""Profile links are written after the subscription's transaction: a crash in between is
repaired by the next write or by the "links" due group, and never leaves links wrong."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.dynamodb.due_index import DueIndex, format_due_at
from chalicelib.adapters.dynamodb.profile_links import (
    LEASE_SECONDS,
    LeaseLost,
    LinkWriter,
    links_for_profile,
)
from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork
from chalicelib.domain.subscription_changes import remove_member
from chalicelib.domain.subscriptions import Subscription
from chalicelib.jobs.registry import SCHEDULED_JOBS
from tests.integration.conftest import TABLE_NAME, Env
from tests.unit.domain.factories import active_sub, new_sub

MEMBERS = ("prof_a", "prof_b", "prof_c")


class CrashAfterCommit:
    """The DynamoDB client of a Lambda that dies right after its transaction: every later
    link write fails."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name in ("batch_write_item", "update_item", "get_item"):
            return self._crash
        return getattr(self._client, name)

    def _crash(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "crashed")


def unit_of_work(env: Env, *, crash: bool = False) -> DynamoUnitOfWork:
    box = env.container
    client = CrashAfterCommit(box.dynamodb) if crash else box.dynamodb
    return DynamoUnitOfWork(
        client, box.subscriptions, box.payments, box.card_snapshots, box.webhook_events, START
    )


START = active_sub().activated_at or active_sub().created_at


def links(env: Env, profile_id: str) -> set[tuple[str, str, str]]:
    found = links_for_profile(env.container.dynamodb, TABLE_NAME, "com_1", profile_id)
    return {(link.subscription_id, link.role, link.status) for link in found}


def save(env: Env, before: Subscription, after: Subscription, *, crash: bool = False) -> None:
    with unit_of_work(env, crash=crash) as uow:
        uow.subscriptions.adopt(before)
        uow.subscriptions.save(after, before.version)
        uow.commit()


def due_link_repairs(env: Env) -> list[str]:
    index = DueIndex(env.container.dynamodb, TABLE_NAME)
    later = START + timedelta(days=1)
    found: list[str] = []
    for shard in range(env.settings.due_index_shards):
        found += [e.subject_id or "" for e in index.due_page("links", shard, later, 100).entries]
    return found


def test_links_follow_the_subscription_after_its_transaction(env: Env) -> None:
    with unit_of_work(env) as uow:
        uow.subscriptions.add(new_sub(members=MEMBERS))
        uow.commit()
    assert links(env, "prof_b") == {("sub_1", "member", "inactive")}
    assert links(env, "prof_owner") == {("sub_1", "owner", "inactive")}
    assert due_link_repairs(env) == []  # written: nothing left to repair


def test_a_crash_after_the_transaction_is_repaired_by_the_links_due_group(env: Env) -> None:
    with unit_of_work(env, crash=True) as uow:
        uow.subscriptions.add(new_sub(members=MEMBERS))
        uow.commit()
    assert links(env, "prof_b") == set()
    assert due_link_repairs(env) == ["sub_1"]

    outcome = SCHEDULED_JOBS["links"].run(env.container, "com_1", "sub_1", START)

    assert outcome == "links_repaired"
    assert links(env, "prof_b") == {("sub_1", "member", "inactive")}
    assert due_link_repairs(env) == []
    assert SCHEDULED_JOBS["links"].run(env.container, "com_1", "sub_1", START) == "links_current"


def test_the_next_write_repairs_what_a_crash_left_including_a_removed_member(env: Env) -> None:
    sub = replace(active_sub(members=MEMBERS), version=1)
    with unit_of_work(env) as uow:
        uow.subscriptions.add(sub)
        uow.commit()
    assert links(env, "prof_a") == {("sub_1", "member", "active")}

    without_a = remove_member(sub, "prof_a", "now", START).subscription
    save(env, sub, without_a, crash=True)  # the removal is committed, its links are not
    assert links(env, "prof_a") == {("sub_1", "member", "active")}

    stored = replace(without_a, version=2)
    cancelled = stored.cancel("now", START).subscription
    save(env, stored, cancelled)

    assert links(env, "prof_a") == set()
    assert links(env, "prof_b") == {("sub_1", "member", "cancelled")}
    assert links(env, "prof_owner") == {("sub_1", "owner", "cancelled")}
    assert due_link_repairs(env) == []


def test_a_writer_that_finds_the_lease_taken_leaves_the_repair_due(env: Env) -> None:
    with unit_of_work(env, crash=True) as uow:
        uow.subscriptions.add(new_sub(members=MEMBERS))
        uow.commit()
    env.container.dynamodb.update_item(  # another writer at work
        TableName=TABLE_NAME,
        Key={"pk": {"S": "C#com_1#SUB#sub_1"}, "sk": {"S": "LINKS"}},
        UpdateExpression="SET lease_owner = :o, lease_until = :u",
        ExpressionAttributeValues={":o": {"S": "other"}, ":u": {"N": "99999999999"}},
    )
    later = START + timedelta(minutes=10)
    assert SCHEDULED_JOBS["links"].run(env.container, "com_1", "sub_1", later) == "links_busy"
    assert links(env, "prof_b") == set()
    assert due_link_repairs(env) == ["sub_1"]  # still due, after the writer at work
    raw = env.container.dynamodb.get_item(
        TableName=TABLE_NAME, Key={"pk": {"S": "C#com_1#SUB#sub_1"}, "sk": {"S": "LINKS"}}
    )["Item"]
    assert raw["due_at"]["S"] == format_due_at(later + timedelta(minutes=2))


class JumpingWall:
    """Wall-clock seconds that jump past the lease right after it was taken."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return 1_000_000.0 if self.readings <= 2 else 1_000_000.0 + LEASE_SECONDS


def test_a_writer_whose_lease_runs_out_stops_and_leaves_the_repair_due(env: Env) -> None:
    with unit_of_work(env, crash=True) as uow:
        uow.subscriptions.add(new_sub(members=MEMBERS))
        uow.commit()
    box = env.container
    late = LinkWriter(
        box.dynamodb, TABLE_NAME, env.settings.due_index_shards, box.subscriptions, JumpingWall()
    )
    with pytest.raises(LeaseLost):
        late.repair("com_1", "sub_1", START)
    assert links(env, "prof_b") == set()
    assert due_link_repairs(env) == ["sub_1"]
    # it gave the lease back: the next repair works
    assert SCHEDULED_JOBS["links"].run(box, "com_1", "sub_1", START) == "links_repaired"
    assert links(env, "prof_b") == {("sub_1", "member", "inactive")}
