"""Idempotency records for POST requests (API.md, Conventions).

Item layout:
- record  pk=`C#<cid>#IDEM#<key>` (community keys) or `PLATFORM#IDEM#<key>` (platform key)
          sk=`IDEM`
          attrs: type="idempotency", request_hash, state="in_progress"|"completed",
          locked_until (epoch s), expires_at (epoch s; the table's TTL attribute),
          response_status, response_headers (map), response_body (string)
A record is claimed with a conditional put; it can be taken over only once it has expired
(24 h) or, while still in progress, once its lock ran out (the request that held it died).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.transactions import is_condition_failure

PLATFORM_SCOPE = "PLATFORM"
ClaimOutcome = Literal["claimed", "replay", "mismatch", "in_progress"]


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    response: StoredResponse | None = None


def record_key(scope: str, key: str) -> dict[str, Any]:
    prefix = PLATFORM_SCOPE if scope == PLATFORM_SCOPE else f"C#{scope}"
    return {"pk": {"S": f"{prefix}#IDEM#{key}"}, "sk": {"S": "IDEM"}}


class IdempotencyStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def claim(
        self, scope: str, key: str, request_hash: str, now: int, lock_seconds: int, ttl_seconds: int
    ) -> Claim:
        """Claim `key` for this request, or say what the earlier request with it left behind."""
        for _ in range(2):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        **record_key(scope, key),
                        **to_item(
                            {
                                "type": "idempotency",
                                "request_hash": request_hash,
                                "state": "in_progress",
                                "locked_until": now + lock_seconds,
                                "expires_at": now + ttl_seconds,
                            }
                        ),
                    },
                    ConditionExpression=(
                        "attribute_not_exists(pk) OR expires_at < :now"
                        " OR (#state = :in_progress AND locked_until < :now)"
                    ),
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={
                        ":now": to_value(now),
                        ":in_progress": to_value("in_progress"),
                    },
                )
                return Claim("claimed")
            except Exception as error:
                if not is_condition_failure(error):
                    raise
            item = self._client.get_item(
                TableName=self._table, Key=record_key(scope, key), ConsistentRead=True
            ).get("Item")
            if item is None:
                continue  # released in between: try to claim again
            existing = from_item(item)
            if existing["request_hash"] != request_hash:
                return Claim("mismatch")
            if existing["state"] != "completed":
                return Claim("in_progress")
            return Claim(
                "replay",
                StoredResponse(
                    status=int(existing["response_status"]),
                    headers={str(k): str(v) for k, v in existing["response_headers"].items()},
                    body=existing.get("response_body", ""),
                ),
            )
        return Claim("in_progress")

    def complete(self, scope: str, key: str, request_hash: str, response: StoredResponse) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=record_key(scope, key),
            UpdateExpression=(
                "SET #state = :completed, response_status = :status,"
                " response_headers = :headers, response_body = :body REMOVE locked_until"
            ),
            ConditionExpression="request_hash = :hash",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":completed": to_value("completed"),
                ":status": to_value(response.status),
                ":headers": to_value(response.headers),
                ":body": to_value(response.body),
                ":hash": to_value(request_hash),
            },
        )

    def release(self, scope: str, key: str, request_hash: str) -> None:
        """Forget an in-progress claim (the request failed in a way worth retrying)."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=record_key(scope, key),
                ConditionExpression="request_hash = :hash AND #state = :in_progress",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":hash": to_value(request_hash),
                    ":in_progress": to_value("in_progress"),
                },
            )
        except Exception as error:
            if not is_condition_failure(error):
                raise
