"""The dunning ledger (services/dunning.py): email claims and the scheduled last reminder.

Items, under the subscription's own dunning partition `C#<cid>#DUNNING#<sid>`:
- `EMAIL#<kind>#<event id | grace end>`: one per email. A conditional put claims it
  (`status` sending, `lease_until` wall seconds); `mark_sent` / `mark_failed` settle it;
  `release` gives it back. A claim left "sending" by a crash can be taken again once its lease
  is over. Kept 90 days (TTL), longer than any replay: outbox records and the event log live
  30 days, a Streams record 24 hours.
- `REMINDER`: the last reminder of the current grace period, with `id` (the subscription) and
  the due-index attributes of group `dunning_reminder` while it is due; `grace_ends_at` says
  which grace period it belongs to. A later grace period replaces it; the same one keeps it
  (sent or not).

Wall time for leases (like the test clock's advance lease): a crashed sender's claim must
expire after real minutes whatever the test clock says.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.dynamodb.due_index import REMOVE_DUE_EXPRESSION, DueGroup, due_attributes
from chalicelib.adapters.dynamodb.items import to_value
from chalicelib.adapters.dynamodb.transactions import is_condition_failure, is_transient
from chalicelib.domain.dunning import Reminder
from chalicelib.domain.errors import Unavailable

CLAIM_LEASE_SECONDS = 600
CLAIM_KEPT = timedelta(days=90)
REMINDER_GROUP: DueGroup = "dunning_reminder"


def _partition(community_id: str, subscription_id: str) -> str:
    return f"C#{community_id}#DUNNING#{subscription_id}"


def _key(community_id: str, subscription_id: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": _partition(community_id, subscription_id)}, "sk": {"S": sk}}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class DunningStore:
    def __init__(
        self,
        client: Any,
        table: str,
        due_shards: int,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._shards = due_shards
        self._wall = wall

    def _call(self, operation: str, **request: Any) -> bool:
        """One request; False when its condition failed; transient failures -> Unavailable."""
        try:
            getattr(self._client, operation)(TableName=self._table, **request)
        except Exception as error:
            if is_condition_failure(error):
                return False
            if is_transient(error):
                raise Unavailable("DynamoDB is unavailable; try again.") from error
            raise
        return True

    # --- email claims ---------------------------------------------------------------------------
    def claim(self, community_id: str, subscription_id: str, key: str) -> bool:
        wall = int(self._wall())
        return self._call(
            "put_item",
            Item={
                **_key(community_id, subscription_id, f"EMAIL#{key}"),
                "type": to_value("dunning_email"),
                "status": to_value("sending"),
                "lease_until": {"N": str(wall + CLAIM_LEASE_SECONDS)},
                "expires_at": {"N": str(wall + int(CLAIM_KEPT.total_seconds()))},
            },
            ConditionExpression=(
                "attribute_not_exists(pk) OR (#s = :sending AND lease_until < :wall)"
            ),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":sending": to_value("sending"), ":wall": {"N": str(wall)}},
        )

    def mark_sent(self, community_id: str, subscription_id: str, key: str, message_id: str) -> None:
        self._settle(community_id, subscription_id, key, "sent", message_id=message_id)

    def mark_failed(self, community_id: str, subscription_id: str, key: str, error: str) -> None:
        self._settle(community_id, subscription_id, key, "failed", error=error)

    def _settle(
        self, community_id: str, subscription_id: str, key: str, status: str, **fields: str
    ) -> None:
        names = {"#s": "status", **{f"#{name}": name for name in fields}}
        values = {":status": to_value(status), **{f":{n}": to_value(v) for n, v in fields.items()}}
        sets = ", ".join(["#s = :status", *(f"#{name} = :{name}" for name in fields)])
        self._call(
            "update_item",
            Key=_key(community_id, subscription_id, f"EMAIL#{key}"),
            UpdateExpression=f"SET {sets} REMOVE lease_until",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def release(self, community_id: str, subscription_id: str, key: str) -> None:
        self._call(
            "delete_item",
            Key=_key(community_id, subscription_id, f"EMAIL#{key}"),
            ConditionExpression="#s = :sending",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":sending": to_value("sending")},
        )

    def email_status(self, community_id: str, subscription_id: str, key: str) -> str | None:
        item = self._client.get_item(
            TableName=self._table,
            Key=_key(community_id, subscription_id, f"EMAIL#{key}"),
            ConsistentRead=True,
        ).get("Item")
        return str(item["status"]["S"]) if item else None

    # --- the last reminder ------------------------------------------------------------------------
    def schedule_reminder(self, community_id: str, reminder: Reminder) -> None:
        grace = _iso(reminder.grace_ends_at)
        kept_until = reminder.grace_ends_at + CLAIM_KEPT
        self._call(
            "put_item",
            Item={
                **_key(community_id, reminder.subscription_id, "REMINDER"),
                "type": to_value("dunning_reminder"),
                "id": to_value(reminder.subscription_id),
                "grace_ends_at": to_value(grace),
                "reminder_due_at": to_value(_iso(reminder.due_at)),
                "amount": {"N": str(reminder.amount)},
                "currency": to_value(reminder.currency),
                "expires_at": {"N": str(int(kept_until.timestamp()))},
                **{
                    name: to_value(value)
                    for name, value in due_attributes(
                        reminder.subscription_id, REMINDER_GROUP, reminder.due_at, self._shards
                    ).items()
                },
            },
            # Only a later grace period replaces it: a record of an earlier failure published
            # again (a replay, a late publication) must not bring back a past reminder.
            ConditionExpression="attribute_not_exists(pk) OR grace_ends_at < :grace",
            ExpressionAttributeValues={":grace": to_value(grace)},
        )

    def reminder(self, community_id: str, subscription_id: str) -> Reminder | None:
        item = self._client.get_item(
            TableName=self._table,
            Key=_key(community_id, subscription_id, "REMINDER"),
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        return Reminder(
            subscription_id=subscription_id,
            grace_ends_at=datetime.fromisoformat(item["grace_ends_at"]["S"]),
            due_at=datetime.fromisoformat(item["reminder_due_at"]["S"]),
            amount=int(item["amount"]["N"]),
            currency=str(item["currency"]["S"]),
        )

    def reminder_done(
        self, community_id: str, subscription_id: str, grace_ends_at: datetime
    ) -> None:
        self._call(
            "update_item",
            Key=_key(community_id, subscription_id, "REMINDER"),
            UpdateExpression=f"{REMOVE_DUE_EXPRESSION} SET done = :yes",
            ConditionExpression="grace_ends_at = :grace",
            ExpressionAttributeValues={
                ":grace": to_value(_iso(grace_ends_at)),
                ":yes": {"BOOL": True},
            },
        )
