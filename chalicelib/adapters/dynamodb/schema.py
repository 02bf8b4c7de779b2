"""The single DynamoDB table definition: keys, GSIs, TTL.

Used by the CDK stack (infra/), the local stack and the tests, so there is exactly one place
that says what the table looks like. Every item lives under its community: `pk` starts with
`C#<community_id>` for tenant data.

Indexes:
- gsi1 / gsi2 / gsi3: general-purpose list indexes; each item type documents what it writes
  there (e.g. plans by status, profiles by email, subscriptions by status).
- due: the sparse, write-sharded scheduling index. Only items with a scheduled action carry
  `due_pk` (`DUE#<action>#<shard>`) and `due_at` (RFC 3339); REMOVE both when the action is done.
"""

from __future__ import annotations

from typing import Any

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"

GSI_KEYS: dict[str, tuple[str, str]] = {
    "gsi1": ("gsi1pk", "gsi1sk"),
    "gsi2": ("gsi2pk", "gsi2sk"),
    "gsi3": ("gsi3pk", "gsi3sk"),
    "due": ("due_pk", "due_at"),
}


def attribute_definitions() -> list[dict[str, str]]:
    names = [PARTITION_KEY, SORT_KEY]
    for hash_key, range_key in GSI_KEYS.values():
        names += [hash_key, range_key]
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def global_secondary_indexes() -> list[dict[str, Any]]:
    return [
        {
            "IndexName": index_name,
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        for index_name, (hash_key, range_key) in GSI_KEYS.items()
    ]


def create_table_kwargs(table_name: str) -> dict[str, Any]:
    """Arguments for DynamoDB CreateTable (on-demand billing)."""
    return {
        "TableName": table_name,
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": attribute_definitions(),
        "GlobalSecondaryIndexes": global_secondary_indexes(),
        "BillingMode": "PAY_PER_REQUEST",
    }


def ensure_table(dynamodb_client: Any, table_name: str) -> None:
    """Create the table (and enable TTL) if it does not exist yet."""
    existing = dynamodb_client.list_tables().get("TableNames", [])
    if table_name in existing:
        return
    dynamodb_client.create_table(**create_table_kwargs(table_name))
    dynamodb_client.get_waiter("table_exists").wait(TableName=table_name)
    dynamodb_client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
