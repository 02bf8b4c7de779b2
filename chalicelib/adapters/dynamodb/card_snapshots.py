"""Snapshots of the cards subscriptions charge, so views and charges need no Stripe call.

Item layout:
- card  pk=`C#<cid>#CARD#<payment_method_id>`  sk=`CARD`
        attrs: type="card_snapshot", id, profile_id, customer, type, brand, last4,
        exp_month, exp_year
Written when a card is first checked against Stripe (it belongs to the owner's customer);
card details of a PaymentMethod do not change except the expiry; the webhooks (issue 5) refresh
brand/last4/expiry on `payment_method.updated` and set `detached_at` on `.detached` (a detached
card is checked on Stripe again, which refuses it); our own detach
(`DELETE /v1/profiles/{id}/payment-methods/{pm}`) sets `detached_at` too (`mark_detached`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value


def card_key(community_id: str, payment_method_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#CARD#{payment_method_id}"}, "sk": {"S": "CARD"}}


def card_update_entry(
    table: str, community_id: str, method_id: str, changes: Mapping[str, Any], created: int
) -> dict[str, Any]:
    """SET `changes` on a card snapshot, unless a card event created later was applied."""
    fields = {**changes, "card_event_created": created}
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":v{i}": to_value(value) for i, value in enumerate(fields.values())}
    values[":created"] = to_value(created)
    return {
        "Update": {
            "TableName": table,
            "Key": card_key(community_id, method_id),
            "UpdateExpression": "SET " + ", ".join(f"{n} = :v{i}" for i, n in enumerate(names)),
            "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists("
            "card_event_created) OR card_event_created < :created)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def card_detached_entry(
    table: str, community_id: str, method_id: str, detached_at: str
) -> dict[str, Any]:
    """SET `detached_at` on a card snapshot, once: card news of any time never undoes it."""
    return {
        "Update": {
            "TableName": table,
            "Key": card_key(community_id, method_id),
            "UpdateExpression": "SET detached_at = :at",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(detached_at)",
            "ExpressionAttributeValues": {":at": to_value(detached_at)},
        }
    }


class CardSnapshots:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    @property
    def table(self) -> str:
        return self._table

    def find(self, community_id: str, payment_method_id: str) -> dict[str, Any] | None:
        item = self._client.get_item(
            TableName=self._table, Key=card_key(community_id, payment_method_id)
        ).get("Item")
        return from_item(item) if item else None

    def put(self, community_id: str, snapshot: dict[str, Any]) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                **card_key(community_id, snapshot["id"]),
                **to_item({"type": "card_snapshot", **snapshot}),
            },
        )

    def mark_detached(self, community_id: str, payment_method_id: str, detached_at: str) -> None:
        """Flag the card detached, if a subscription ever used it (a snapshot exists) and it
        is not flagged already; otherwise nothing."""
        entry = card_detached_entry(self._table, community_id, payment_method_id, detached_at)
        try:
            self._client.update_item(**entry["Update"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
