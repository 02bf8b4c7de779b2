"""The local stack's moto server (infra/local/moto_server.py): one request at a time, and
transactions that back up only their own items, all-or-nothing as before."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.dynamodb.schema import ensure_table
from infra.local.moto_server import fast_string_comparisons, journal_transactions, serialized

TABLE = "moto-server-test"


def test_serialized_runs_one_request_at_a_time() -> None:
    running = {"now": 0, "most": 0}
    guard = threading.Lock()

    def slow_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with guard:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.01)
        start_response("200 OK", [])
        with guard:
            running["now"] -= 1
        return [b"a", b"b"]

    app = serialized(slow_app)
    bodies: list[bytes] = []

    def call() -> None:
        bodies.append(b"".join(app({}, lambda *_: None)))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert running["most"] == 1
    assert bodies == [b"ab"] * 8


@pytest.fixture
def journaled(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        undo_journal = journal_transactions()
        undo_strings = fast_string_comparisons()
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            ensure_table(client, TABLE)
            yield client
        finally:
            undo_strings()
            undo_journal()


def _item(client: Any, pk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(
        TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": "s"}}
    ).get("Item")
    return found


def test_a_failed_transaction_changes_nothing(journaled: Any) -> None:
    client = journaled
    for pk in ("kept", "deleted"):
        client.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "sk": {"S": "s"}, "v": {"N": "1"}})
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "new"}, "sk": {"S": "s"}}}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "kept"}, "sk": {"S": "s"}},
                        "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "deleted"}, "sk": {"S": "s"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "absent"}, "sk": {"S": "s"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert _item(client, "new") is None
    assert _item(client, "kept") == {"pk": {"S": "kept"}, "sk": {"S": "s"}, "v": {"N": "1"}}
    assert _item(client, "deleted") is not None


def test_a_transaction_that_succeeds_writes_everything(journaled: Any) -> None:
    client = journaled
    client.put_item(TableName=TABLE, Item={"pk": {"S": "old"}, "sk": {"S": "s"}})
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "fresh"}, "sk": {"S": "s"}}}},
            {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "old"}, "sk": {"S": "s"}}}},
        ]
    )
    assert _item(client, "fresh") is not None
    assert _item(client, "old") is None


def test_queries_on_string_keys_answer_as_before(journaled: Any) -> None:
    client = journaled
    for n in (3, 1, 2):
        client.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": f"sub{n}"},
                "sk": {"S": "s"},
                "due_pk": {"S": "DUE#renewal#0"},
                "due_at": {"S": f"2026-01-0{n}"},
            },
        )
    page = client.query(
        TableName=TABLE,
        IndexName="due",
        KeyConditionExpression="due_pk = :p AND due_at BETWEEN :lo AND :hi",
        ExpressionAttributeValues={
            ":p": {"S": "DUE#renewal#0"},
            ":lo": {"S": "2026-01-02"},
            ":hi": {"S": "2026-01-09"},
        },
    )
    assert [item["due_at"]["S"] for item in page["Items"]] == ["2026-01-02", "2026-01-03"]
