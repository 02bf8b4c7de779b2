"""Charge keys: at most one live charge per (subscription, period, kind[, what]).

Item layout (in the subscription's partition):
    pk = C#<community_id>#SUB#<subscription_id>
    sk = CHARGE#<charge key>          e.g. CHARGE#2026-01-15T12:00:00Z#renewal
    payment_id, status: pending | succeeded | failed

The claim is a conditional Put written in the same transaction as the pending payment: it
succeeds only when no charge holds the key or the one that did has failed (a failed charge
may be attempted again, e.g. activation with another card). So two concurrent activations,
two scheduler workers renewing one period, or a retried request can never both reach Stripe.
The resolution transaction moves the key to succeeded/failed together with the payment.
"""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.dynamodb.audit_events import subscription_partition
from chalicelib.adapters.dynamodb.items import to_item, to_value

CHARGE_PREFIX = "CHARGE#"


def _key(community_id: str, subscription_id: str, charge_key: str) -> dict[str, Any]:
    return to_item(
        {
            "pk": subscription_partition(community_id, subscription_id),
            "sk": f"{CHARGE_PREFIX}{charge_key}",
        }
    )


def claim_entry(
    table: str,
    community_id: str,
    subscription_id: str,
    charge_key: str,
    payment_id: str,
    status: str = "pending",
) -> dict[str, Any]:
    item = {
        **_key(community_id, subscription_id, charge_key),
        **to_item({"payment_id": payment_id, "status": status}),
    }
    return {
        "Put": {
            "TableName": table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk) OR #status = :failed",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":failed": to_value("failed")},
        }
    }


def resolve_entry(
    table: str,
    community_id: str,
    subscription_id: str,
    charge_key: str,
    payment_id: str,
    status: str,
) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": _key(community_id, subscription_id, charge_key),
            "UpdateExpression": "SET #status = :status",
            "ConditionExpression": "payment_id = :pid",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":status": to_value(status),
                ":pid": to_value(payment_id),
            },
        }
    }
