"""Profile links: a change's few link writes ride in the subscription's own transaction; many
(a big subscription) are written after it, where a crash in between is repaired by the next
write or by the "links" due group, and never leaves links wrong."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.dynamodb.due_index import DueIndex, format_due_at
from chalicelib.adapters.dynamodb.profile_links import (
    FORMER_LINK_TYPE,
    LEASE_SECONDS,
    LeaseLost,
    LinkWriter,
    links_for_profile,
)
from chalicelib.adapters.dynamodb.unit_of_work import INLINE_LINKS_MAX_ITEMS, DynamoUnitOfWork
from chalicelib.domain.subscription_changes import remove_member
from chalicelib.domain.subscriptions import Subscription
from chalicelib.jobs.registry import SCHEDULED_JOBS
from tests.integration.conftest import TABLE_NAME, Env
from tests.unit.domain.factories import active_sub, new_sub

MEMBERS = ("prof_a", "prof_b", "prof_c")
# Over the inline bound (owner + members + subscription + link state > 90 items): the writer.
BIG = (*MEMBERS, *(f"prof_{n:03d}" for n in range(147)))


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


def former_links(env: Env, profile_id: str) -> set[tuple[str, str]]:
    """The (subscription, role) parts the profile left: what its billing history still reads."""
    answer = env.container.dynamodb.query(
        TableName=TABLE_NAME,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"C#com_1#PROFILE#{profile_id}"}},
    )
    return {
        (item["subscription_id"]["S"], item["role"]["S"])
        for item in answer["Items"]
        if item["type"]["S"] == FORMER_LINK_TYPE
    }


def save(env: Env, before: Subscription, after: Subscription, *, crash: bool = False) -> None:
    with unit_of_work(env, crash=crash) as uow:
        uow.subscriptions.adopt(before)
        uow.subscriptions.save(after, before.version)
        uow.commit()


@contextmanager
def dynamodb_requests(client: Any) -> Iterator[Counter[str]]:
    ops: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        ops[model.name] += 1

    client.meta.events.register("before-call.dynamodb.*", count, unique_id="test-links-count")
    try:
        yield ops
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", unique_id="test-links-count")


def link_state(env: Env) -> dict[str, Any]:
    item: dict[str, Any] = env.container.dynamodb.get_item(
        TableName=TABLE_NAME, Key={"pk": {"S": "C#com_1#SUB#sub_1"}, "sk": {"S": "LINKS"}}
    )["Item"]
    return item


def add(env: Env, sub: Subscription, *, crash: bool = False) -> Counter[str]:
    with dynamodb_requests(env.container.dynamodb) as ops, unit_of_work(env, crash=crash) as uow:
        uow.subscriptions.add(sub)
        uow.commit()
    return ops


def due_link_repairs(env: Env) -> list[str]:
    index = DueIndex(env.container.dynamodb, TABLE_NAME)
    later = START + timedelta(days=1)
    found: list[str] = []
    for shard in range(env.settings.due_index_shards):
        found += [e.subject_id or "" for e in index.due_page("links", shard, later, 100).entries]
    return found


def test_the_links_of_a_small_subscription_ride_in_its_own_transaction(env: Env) -> None:
    ops = add(env, new_sub(members=MEMBERS), crash=True)  # nothing runs after the commit

    assert ops == Counter({"TransactWriteItems": 1})
    assert links(env, "prof_b") == {("sub_1", "member", "inactive")}
    assert links(env, "prof_owner") == {("sub_1", "owner", "inactive")}
    assert due_link_repairs(env) == []  # written: nothing left to repair
    state = link_state(env)
    assert (state["wanted"], state["written"]) == ({"N": "1"}, {"N": "1"})


def test_links_follow_a_big_subscription_after_its_transaction(env: Env) -> None:
    ops = add(env, new_sub(members=BIG))

    # The transaction, then the writer: lease, 151 links in batches of 25, finish.
    assert ops == Counter({"TransactWriteItems": 1, "UpdateItem": 2, "BatchWriteItem": 7})
    assert links(env, "prof_b") == {("sub_1", "member", "inactive")}
    assert links(env, BIG[-1]) == {("sub_1", "member", "inactive")}
    assert links(env, "prof_owner") == {("sub_1", "owner", "inactive")}
    assert due_link_repairs(env) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (0, Counter({"TransactWriteItems": 1})),
        (1, Counter({"TransactWriteItems": 1, "UpdateItem": 2, "BatchWriteItem": 4})),
    ],
)
def test_links_ride_in_the_transaction_up_to_the_bound(
    env: Env, extra: int, expected: Counter[str]
) -> None:
    # A new subscription's transaction: its item, its link state, the owner's link, and one
    # link per member.
    members = [f"prof_{n:03d}" for n in range(INLINE_LINKS_MAX_ITEMS - 3 + extra)]

    assert add(env, new_sub(members=members)) == expected
    assert links(env, members[-1]) == {("sub_1", "member", "inactive")}
    assert due_link_repairs(env) == []


def test_a_small_change_of_a_big_subscription_rides_in_its_transaction(env: Env) -> None:
    sub = replace(active_sub(members=BIG), version=1)
    add(env, sub)
    without_a = remove_member(sub, "prof_a", "now", START).subscription

    with dynamodb_requests(env.container.dynamodb) as ops:
        save(env, sub, without_a)

    assert ops == Counter({"TransactWriteItems": 1})  # one former link, not 150 links
    assert links(env, "prof_a") == set()
    assert links(env, "prof_b") == {("sub_1", "member", "active")}
    assert due_link_repairs(env) == []


def test_a_crash_after_the_transaction_is_repaired_by_the_links_due_group(env: Env) -> None:
    add(env, new_sub(members=BIG), crash=True)
    assert links(env, "prof_b") == set()
    assert due_link_repairs(env) == ["sub_1"]

    outcome = SCHEDULED_JOBS["links"].run(env.container, "com_1", "sub_1", START)

    assert outcome == "links_repaired"
    assert links(env, "prof_b") == {("sub_1", "member", "inactive")}
    assert due_link_repairs(env) == []
    assert SCHEDULED_JOBS["links"].run(env.container, "com_1", "sub_1", START) == "links_current"


def test_the_next_write_repairs_what_a_crash_left_including_a_removed_member(env: Env) -> None:
    sub = replace(active_sub(members=BIG), version=1)
    add(env, sub)
    leaving = ["prof_a", *BIG[3:100]]  # 98 links to delete: over the bound, the writer
    smaller = sub
    for profile_id in leaving:
        smaller = remove_member(smaller, profile_id, "now", START).subscription
    save(env, sub, smaller, crash=True)  # the removal is committed, its links are not
    assert links(env, "prof_a") == {("sub_1", "member", "active")}

    stored = replace(smaller, version=2)
    without_c = remove_member(stored, "prof_c", "now", START).subscription
    with dynamodb_requests(env.container.dynamodb) as ops:
        save(env, stored, without_c)

    # A one-link change, but the links are behind: the transaction with it inside is refused
    # (nothing written) and the same change goes again with the writer, which writes every
    # link of the subscription as it is and turns the ones the crash left into former links.
    assert ops["TransactWriteItems"] == 2
    assert ops["BatchWriteItem"] == 7  # 52 links and 99 former links, in batches of 25
    assert links(env, "prof_a") == set()
    assert links(env, BIG[50]) == set()
    assert links(env, "prof_c") == set()
    assert former_links(env, "prof_a") == former_links(env, "prof_c") == {("sub_1", "member")}
    assert former_links(env, "prof_b") == set()
    assert links(env, "prof_b") == {("sub_1", "member", "active")}
    assert links(env, BIG[-1]) == {("sub_1", "member", "active")}
    assert links(env, "prof_owner") == {("sub_1", "owner", "active")}
    assert due_link_repairs(env) == []


def test_a_writer_that_finds_the_lease_taken_leaves_the_repair_due(env: Env) -> None:
    add(env, new_sub(members=BIG), crash=True)
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
    add(env, new_sub(members=BIG), crash=True)
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
