"""API-key repository.

Item layout (looked up by key id on every request, so keyed by it rather than by community):
- api key   pk=`APIKEY#<key_id>`  sk=`APIKEY`
            attrs: type="api_key", key_id, community_id, secret_hash (hex sha256 of the whole
            presented key), created_at, revoked_at?
The secret itself is never stored. Reads are strongly consistent, so a revoked key is refused
on the very next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.adapters.dynamodb.codec import format_time
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.adapters.dynamodb.transactions import is_condition_failure
from chalicelib.domain.errors import NotFound


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    community_id: str
    secret_hash: str
    revoked: bool


def api_key_key(key_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"APIKEY#{key_id}"}, "sk": {"S": "APIKEY"}}


class ApiKeyRepository:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def put_entry(
        self, key_id: str, community_id: str, secret_hash: str, now: datetime
    ) -> dict[str, Any]:
        """A TransactWriteItems entry that stores a new key."""
        item = to_item(
            {
                "type": "api_key",
                "key_id": key_id,
                "community_id": community_id,
                "secret_hash": secret_hash,
                "created_at": format_time(now),
            }
        )
        return {
            "Put": {
                "TableName": self._table,
                "Item": {**api_key_key(key_id), **item},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def find(self, key_id: str) -> StoredKey | None:
        item = self._client.get_item(
            TableName=self._table, Key=api_key_key(key_id), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        data = from_item(item)
        return StoredKey(
            key_id=data["key_id"],
            community_id=data["community_id"],
            secret_hash=data["secret_hash"],
            revoked="revoked_at" in data,
        )

    def revoke(self, community_id: str, key_id: str, now: datetime) -> None:
        """Mark the key revoked; NotFound unless it belongs to `community_id`."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=api_key_key(key_id),
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(pk) AND community_id = :cid",
                ExpressionAttributeValues={
                    ":now": to_value(format_time(now)),
                    ":cid": to_value(community_id),
                },
            )
        except Exception as error:
            if is_condition_failure(error):
                raise NotFound(f"API key {key_id} not found.") from None
            raise
