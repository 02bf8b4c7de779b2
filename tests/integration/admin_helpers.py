"""Helpers for the admin API tests (issue 3): communities with keys, JSON calls, item counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.conftest import PLATFORM_KEY, TABLE_NAME, Env, moto_app_env


@pytest.fixture(scope="module")
def shared_env() -> Iterator[Env]:
    """One moto table + app per test module (tests stay apart by using their own community)."""
    # Nothing here may reach real Stripe: a closed local port fails fast.
    with moto_app_env("http://127.0.0.1:9") as env:
        yield env


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


def call(
    env: Env,
    method: str,
    path: str,
    body: Any = None,
    key: str = PLATFORM_KEY,
    headers: dict[str, str] | None = None,
    raw: bytes | str | None = None,
) -> Reply:
    all_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    all_headers.update(headers or {})
    payload: bytes | str | None = raw if raw is not None else None
    if payload is None and body is not None:
        payload = json.dumps(body)
    response = getattr(env.client.http, method.lower())(path, headers=all_headers, body=payload)
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    return Reply(
        response.status_code,
        json.loads(text) if text else None,
        {k.lower(): v for k, v in response.headers.items()},
    )


@dataclass
class Tenant:
    id: str
    key: str


def new_community(env: Env, **fields: Any) -> Tenant:
    reply = call(env, "POST", "/v1/communities", {"name": "Climbing club", **fields})
    assert reply.status == 201, reply.body
    return Tenant(reply.body["id"], reply.body["api_key"]["secret"])


def item_count(include_idempotency: bool = True) -> int:
    """Items in the table, counted with a Scan: tests only (the app never scans)."""
    from tests.support.moto_clients import moto_client

    client = moto_client("dynamodb", region_name="us-east-1")
    count = 0
    kwargs: dict[str, Any] = {"TableName": TABLE_NAME, "Select": "COUNT"}
    if not include_idempotency:
        kwargs["FilterExpression"] = "attribute_not_exists(#t) OR #t <> :idem"
        kwargs["ExpressionAttributeNames"] = {"#t": "type"}
        kwargs["ExpressionAttributeValues"] = {":idem": {"S": "idempotency"}}
    while True:
        page = client.scan(**kwargs)
        count += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def item_counts() -> tuple[int, int]:
    """(all items, items other than idempotency records), with one Scan: tests only."""
    from tests.support.moto_clients import moto_client

    client = moto_client("dynamodb", region_name="us-east-1")
    total = records = 0
    kwargs: dict[str, Any] = {
        "TableName": TABLE_NAME,
        "ProjectionExpression": "#t",
        "ExpressionAttributeNames": {"#t": "type"},
    }
    while True:
        page = client.scan(**kwargs)
        total += page["Count"]
        records += sum(1 for i in page["Items"] if i.get("type", {}).get("S") == "idempotency")
        if "LastEvaluatedKey" not in page:
            return total, total - records
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
