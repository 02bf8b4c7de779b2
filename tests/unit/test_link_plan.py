"""Where a change's profile links are written (adapters/dynamodb/unit_of_work.LinkPlan): in the
transaction when they fit its bounds, else by the LinkWriter after it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.dynamodb.profile_links import LinkChange, LinkWriter
from chalicelib.adapters.dynamodb.unit_of_work import INLINE_LINKS_MAX_BYTES, LinkPlan
from chalicelib.domain.subscriptions import Subscription
from tests.unit.domain.factories import new_sub

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)
TABLE = "billing"


class NoSubscriptions:
    def find(self, community_id: str, subscription_id: str) -> Subscription | None:
        return None


WRITER = LinkWriter(client=None, table=TABLE, due_shards=4, subscriptions=NoSubscriptions())


def created(members: tuple[str, ...]) -> LinkChange:
    return LinkChange("com_1", "sub_1", None, new_sub(members=members), 1)


def put(size: int) -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "X"}, "blob": {"S": "x" * size}}}}


def test_a_small_change_stages_its_link_writes_after_its_guarded_state_entry() -> None:
    plan = LinkPlan.of([put(10)], [created(("prof_a", "prof_b"))], TABLE, WRITER, NOW, inline=True)

    assert plan.after_commit == []
    assert plan.inline_states == frozenset({1})
    state = plan.entries[1]["Update"]
    assert state["ConditionExpression"] == "attribute_not_exists(pk) OR written = wanted"
    puts = [e["Put"]["Item"]["sk"]["S"] for e in plan.entries[2:]]
    assert sorted(puts) == ["SUB#sub_1#member", "SUB#sub_1#member", "SUB#sub_1#owner"]


def test_links_that_would_take_the_request_over_its_byte_bound_go_to_the_writer() -> None:
    change = created(("prof_a",))
    heavy = [put(INLINE_LINKS_MAX_BYTES)]

    plan = LinkPlan.of(heavy, [change], TABLE, WRITER, NOW, inline=True)

    assert plan.after_commit == [change]
    assert plan.inline_states == frozenset()
    assert len(plan.entries) == 2  # the heavy entry and the writer's state entry
    assert "ConditionExpression" not in plan.entries[1]["Update"]


def test_without_inline_every_change_goes_to_the_writer() -> None:
    change = created(("prof_a",))

    plan = LinkPlan.of([put(10)], [change], TABLE, WRITER, NOW, inline=False)

    assert plan.after_commit == [change]
    assert len(plan.entries) == 2
