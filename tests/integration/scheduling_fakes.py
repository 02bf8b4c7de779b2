"""Test actions for the scheduling machinery, with the shape of the real ones (DESIGN.md 6).

A `FakeBilling` keeps subscription items in the real (moto) table, with real due attributes,
and "charges" into an in-memory ledger keyed like Stripe's idempotency keys. Its renewal is the
design's three steps: claim (conditional on version), charge, resolve (conditional) — so the
machinery under test (sweeps, worker, test clock) meets the same races the real actions do.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.adapters.dynamodb.due_index import (
    DUE_ATTRIBUTE_NAMES,
    DueGroup,
    due_attributes,
    format_due_at,
)
from chalicelib.bootstrap import Container
from chalicelib.jobs.registry import SCHEDULED_JOBS, Action, ScheduledJob

COMMUNITY = "com_sched"
PERIOD = timedelta(days=30)
RETRY_AFTER = timedelta(days=3)
GRACE = timedelta(days=7)


def sub_key(sub_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{COMMUNITY}#SUB#{sub_id}"}, "sk": {"S": "SUB"}}


def parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass
class FakeBilling:
    box: Container
    charges: list[tuple[str, int]] = field(default_factory=list)  # (sub id, period)
    declining: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    history: list[tuple[str, str, datetime]] = field(default_factory=list)  # (sub, outcome, now)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def table(self) -> str:
        return self.box.settings.table_name

    def add(self, sub_id: str, group: DueGroup, due: datetime, status: str = "active") -> None:
        attrs = due_attributes(sub_id, group, due, self.box.settings.due_index_shards)
        item = {
            **sub_key(sub_id),
            "id": {"S": sub_id},
            "status": {"S": status},
            "version": {"N": "1"},
            "period": {"N": "1"},
            **{name: {"S": value} for name, value in attrs.items()},
        }
        self.box.dynamodb.put_item(TableName=self.table, Item=item)

    def load(self, sub_id: str) -> dict[str, Any]:
        item = self.box.dynamodb.get_item(
            TableName=self.table, Key=sub_key(sub_id), ConsistentRead=True
        )["Item"]
        return dict(item)

    def jobs(self) -> dict[DueGroup, ScheduledJob]:
        """The registry's jobs running these actions; the worker re-checks before each."""
        actions: dict[DueGroup, Action] = {
            "renewal": self.renew,
            "failed_payment": self.failed_payment,
            "expiration": self.expire,
        }
        return {
            group: SCHEDULED_JOBS[group].with_action(self._recorded(action))
            for group, action in actions.items()
        }

    def _recorded(self, action: Action) -> Action:
        def run(box: Container, community_id: str, sub_id: str, now: datetime) -> str:
            outcome = action(box, community_id, sub_id, now)
            with self.lock:
                self.history.append((sub_id, outcome, now))
            return outcome

        return run

    # --- actions -------------------------------------------------------------------------
    def renew(self, box: Container, community_id: str, sub_id: str, now: datetime) -> str:
        self.calls["renew"] += 1
        assert community_id == COMMUNITY
        item = self.load(sub_id)
        if item["status"]["S"] != "active" or parse(item["due_at"]["S"]) > now:
            return "noop"
        if "charging" in item:
            return "noop"  # another worker is between its claim and its resolve
        version, period = int(item["version"]["N"]), int(item["period"]["N"])
        if not self._claim(sub_id, version):
            return "noop"  # another worker has this renewal
        due = parse(item["due_at"]["S"])
        if sub_id in self.declining:
            self._write(sub_id, version + 1, "failed", now, "failed_payment", now + RETRY_AFTER)
            return "renewal_failed"
        self._charge(sub_id, period + 1)
        self._write(sub_id, version + 1, "active", now, "renewal", due + PERIOD, period + 1)
        return "renewed"

    def failed_payment(self, box: Container, community_id: str, sub_id: str, now: datetime) -> str:
        self.calls["failed_payment"] += 1
        item = self.load(sub_id)
        if item["status"]["S"] != "failed" or "charging" in item:
            return "noop"
        version, period = int(item["version"]["N"]), int(item["period"]["N"])
        grace_end = parse(item.get("failed_at", item["due_at"])["S"]) + GRACE
        if now >= grace_end:
            self._write(sub_id, version, "cancelled", now)
            return "grace_cancelled"
        if not self._claim(sub_id, version):
            return "noop"
        if sub_id in self.declining:
            next_due = min(now + RETRY_AFTER, grace_end)
            self._write(sub_id, version + 1, "failed", now, "failed_payment", next_due)
            return "retry_failed"
        self._charge(sub_id, period + 1)
        self._write(sub_id, version + 1, "active", now, "renewal", now + PERIOD, period + 1)
        return "retry_succeeded"

    def expire(self, box: Container, community_id: str, sub_id: str, now: datetime) -> str:
        self.calls["expire"] += 1
        item = self.load(sub_id)
        if item["status"]["S"] != "expiring":
            return "noop"
        self._write(sub_id, int(item["version"]["N"]), "cancelled", now)
        return "expired"

    # --- helpers -------------------------------------------------------------------------
    def _charge(self, sub_id: str, period: int) -> None:
        with self.lock:
            self.charges.append((sub_id, period))

    def _claim(self, sub_id: str, version: int) -> bool:
        try:
            self.box.dynamodb.update_item(
                TableName=self.table,
                Key=sub_key(sub_id),
                UpdateExpression="SET version = :next, charging = :next",
                ConditionExpression="version = :v",
                ExpressionAttributeValues={
                    ":v": {"N": str(version)},
                    ":next": {"N": str(version + 1)},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _write(
        self,
        sub_id: str,
        version: int,
        status: str,
        now: datetime,
        group: DueGroup | None = None,
        due: datetime | None = None,
        period: int | None = None,
    ) -> None:
        """Conditional on `version`: the new status, and the due attributes set or removed."""
        values: dict[str, Any] = {
            ":v": {"N": str(version)},
            ":next": {"N": str(version + 1)},
            ":s": {"S": status},
        }
        sets = ["version = :next", "#st = :s"]
        removes: list[str] = ["charging"]
        if period is not None:
            sets.append("period = :p")
            values[":p"] = {"N": str(period)}
        if group is not None and due is not None:
            shards = self.box.settings.due_index_shards
            for name, value in due_attributes(sub_id, group, due, shards).items():
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = {"S": value}
        else:
            removes += list(DUE_ATTRIBUTE_NAMES)
        if status == "failed":
            sets.append("failed_at = if_not_exists(failed_at, :now)")
            values[":now"] = {"S": format_due_at(now)}
        else:
            removes.append("failed_at")
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        self.box.dynamodb.update_item(
            TableName=self.table,
            Key=sub_key(sub_id),
            UpdateExpression=expression,
            ConditionExpression="version = :v",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues=values,
        )
