"""The local stack's moto server (infra/local/moto_server.py): one request at a time, and
transactions that back up only their own items, all-or-nothing as before."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

from chalicelib.adapters.dynamodb.schema import ensure_table
from infra.local.moto_server import (
    ITEM_OPERATIONS,
    _read_all,
    _replaced,
    cached_conditions,
    cached_update_expressions,
    cheaper_dispatch,
    dynamodb_direct,
    fast_item_responses,
    fast_string_comparisons,
    indexed_queries,
    items_sized_once,
    journal_transactions,
    json_parameters,
    read_body_first,
    serialized,
)
from tests.support.moto_clients import moto_client

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
        undo_queries = indexed_queries()
        try:
            client = moto_client("dynamodb", region_name="us-east-1")
            ensure_table(client, TABLE)
            yield client
        finally:
            undo_queries()
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


PARTITIONS = ("A", "B", "C")


def _random_item(rng: random.Random, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(rng.randint(0, 9))}}
    if rng.random() < 0.7:
        item["due_pk"] = {"S": rng.choice(PARTITIONS)}
        if rng.random() < 0.9:  # an item without the range key is not in the index
            item["due_at"] = {"S": f"2026-01-{rng.randint(1, 28):02d}"}
    if rng.random() < 0.5:
        item["gsi1pk"] = {"S": rng.choice(PARTITIONS)}
        item["gsi1sk"] = {"S": f"{rng.randint(0, 99):02d}"}
    return item


def _random_write(client: Any, rng: random.Random, keys: list[tuple[str, str]]) -> None:
    """One write of a random kind: each path moto writes through (conditions may fail)."""
    pk, sk = rng.choice(keys)
    key = {"pk": {"S": pk}, "sk": {"S": sk}}
    kind = rng.choice(("put", "update", "remove", "delete", "transact", "batch", "conditional"))
    if kind == "put":
        client.put_item(TableName=TABLE, Item=_random_item(rng, pk, sk))
    elif kind == "update":
        client.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET due_pk = :p, due_at = :a, gsi1pk = :p, gsi1sk = :a",
            ExpressionAttributeValues={
                ":p": {"S": rng.choice(PARTITIONS)},
                ":a": {"S": f"2026-02-{rng.randint(1, 28):02d}"},
            },
        )
    elif kind == "remove":
        client.update_item(TableName=TABLE, Key=key, UpdateExpression="REMOVE due_pk, gsi1pk")
    elif kind == "delete":
        client.delete_item(TableName=TABLE, Key=key)
    elif kind == "conditional":
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.put_item(
                TableName=TABLE,
                Item=_random_item(rng, pk, sk),
                ConditionExpression="attribute_not_exists(pk)",
            )
    elif kind == "batch":
        picked = rng.sample(keys, 3)
        client.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": _random_item(rng, p, s)}}
                    if rng.random() < 0.6
                    else {"DeleteRequest": {"Key": {"pk": {"S": p}, "sk": {"S": s}}}}
                    for p, s in picked
                ]
            }
        )
    else:
        picked = rng.sample(keys, 3)
        entries: list[dict[str, Any]] = [
            {"Put": {"TableName": TABLE, "Item": _random_item(rng, p, s)}} for p, s in picked[:2]
        ]
        third = {"pk": {"S": picked[2][0]}, "sk": {"S": picked[2][1]}}
        entries.append(
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": third,
                    "UpdateExpression": "SET due_pk = :p REMOVE gsi1pk",
                    "ExpressionAttributeValues": {":p": {"S": rng.choice(PARTITIONS)}},
                    # Half of these fail, and the whole transaction with them.
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        )
        with contextlib.suppress(client.exceptions.TransactionCanceledException):
            client.transact_write_items(TransactItems=entries)


def _every_item(client: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": TABLE}
    while True:
        page = client.scan(**request)  # moto's Scan walks the table itself: the reference
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _query_all(client: Any, request: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    request = {**request, "Limit": 4}  # pages, to cover ExclusiveStartKey too
    while True:
        page = client.query(**request)
        found += [(item["pk"]["S"], item["sk"]["S"]) for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return found
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_indexed_queries_find_what_a_walk_of_the_table_finds(journaled: Any) -> None:
    client = journaled
    rng = random.Random(20261201)
    keys = [(f"p{n % 7}", f"s{n}") for n in range(40)]
    for step in range(400):
        _random_write(client, rng, keys)
        if step % 20:
            continue
        table = _every_item(client)
        for value in PARTITIONS:
            for index, hash_name, range_name in (
                ("due", "due_pk", "due_at"),
                ("gsi1", "gsi1pk", "gsi1sk"),
            ):
                expected = [
                    (item["pk"]["S"], item["sk"]["S"])
                    for item in sorted(
                        (
                            i
                            for i in table
                            if i.get(hash_name, {}).get("S") == value and range_name in i
                        ),
                        key=lambda i: (i[range_name]["S"], i["pk"]["S"], i["sk"]["S"]),
                    )
                ]
                request = {
                    "TableName": TABLE,
                    "IndexName": index,
                    "KeyConditionExpression": "#h = :v",
                    "ExpressionAttributeNames": {"#h": hash_name},
                    "ExpressionAttributeValues": {":v": {"S": value}},
                }
                assert _query_all(client, request) == expected, (step, index, value)
        for pk in {pk for pk, _ in keys}:
            expected_rows = sorted(
                (item["pk"]["S"], item["sk"]["S"]) for item in table if item["pk"]["S"] == pk
            )
            request = {
                "TableName": TABLE,
                "KeyConditionExpression": "pk = :v",
                "ExpressionAttributeValues": {":v": {"S": pk}},
            }
            assert _query_all(client, request) == expected_rows, (step, pk)


def test_cheaper_dispatch_answers_as_moto_does() -> None:
    import moto.backends as moto_backends
    import moto.core.responses as moto_responses
    from moto.dynamodb.responses import DynamoHandler

    modules = list(moto_backends.list_of_moto_modules())
    methods = moto_responses.method_names_from_class(DynamoHandler)  # type: ignore[attr-defined]
    undo = cheaper_dispatch()
    try:
        assert list(moto_backends.list_of_moto_modules()) == modules
        assert "dynamodb" in modules
        remembered = moto_responses.method_names_from_class(DynamoHandler)  # type: ignore[attr-defined]
        assert remembered == methods
        assert "transact_write_items" in remembered
    finally:
        undo()
    assert moto_responses.method_names_from_class(DynamoHandler) == methods  # type: ignore[attr-defined]


def test_item_responses_written_directly_are_the_bodies_moto_would_serialize(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every item operation, with every attribute type, answered both ways: equal bodies."""
    from moto.core.responses import ActionResult

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    installed = ActionResult.execute_result  # the suite's own (tests/conftest.py)
    general = getattr(installed, "general", installed)
    answered: list[tuple[str, Any, Any]] = []
    fell_back: list[str] = []

    def general_counted(self: Any, context: Any) -> Any:
        fell_back.append(context.operation_model.name)
        return general(self, context)

    with mock_aws():
        as_installed = _replaced((ActionResult, "execute_result", general_counted))
        undo = fast_item_responses()
        fast = ActionResult.execute_result

        def both(self: Any, context: Any) -> Any:
            expected = general(self, context)
            got = fast(self, context)
            answered.append((context.operation_model.name, expected, got))
            return got

        ActionResult.execute_result = both  # type: ignore[method-assign]
        try:
            client = moto_client("dynamodb", region_name="us-east-1")
            ensure_table(client, TABLE)
            _every_item_operation(client)
        finally:
            undo()
            as_installed()
    # The fast way answered every item operation, those whose answer holds bytes included.
    item_answers = [name for name, _, _ in answered if name in ITEM_OPERATIONS]
    assert len(item_answers) > 20
    with_bytes = [name for name, (_, _, body), _ in answered if '"B": ' in body]
    assert {"GetItem", "BatchGetItem", "Query", "PutItem"} <= set(with_bytes)
    assert [n for n in fell_back if n in ITEM_OPERATIONS] == []
    assert {name for name, _, _ in answered} >= ITEM_OPERATIONS  # every one was answered
    for name, (status, headers, body), (fast_status, fast_headers, fast_body) in answered:
        assert fast_status == status, name
        assert fast_headers["Content-Type"] == headers["Content-Type"], name
        assert json.loads(fast_body) == json.loads(body), name


def _every_item_operation(client: Any) -> None:
    rich = {
        "pk": {"S": "p1"},
        "sk": {"S": "s1"},
        "text": {"S": 'héllo "quoted" \n'},
        "empty": {"S": ""},
        "number": {"N": "12.50"},
        "negative": {"N": "-3"},
        "flag": {"BOOL": True},
        "nothing": {"NULL": True},
        "strings": {"SS": ["a", "b"]},
        "numbers": {"NS": ["1", "2.5"]},
        "list": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"L": []}}}]},
        "map": {"M": {"k": {"S": "v"}, "inner": {"M": {}}}},
        "blob": {"B": b"\x00\x01bytes"},
        "gsi1pk": {"S": "g"},
        "gsi1sk": {"S": "1"},
    }
    key = {"pk": {"S": "p1"}, "sk": {"S": "s1"}}
    client.put_item(TableName=TABLE, Item=rich, ReturnConsumedCapacity="TOTAL")
    client.put_item(TableName=TABLE, Item={**rich, "sk": {"S": "s2"}}, ReturnValues="ALL_OLD")
    client.put_item(TableName=TABLE, Item={**rich, "sk": {"S": "s2"}}, ReturnValues="ALL_OLD")
    plain = {k: v for k, v in rich.items() if k != "blob"}
    client.put_item(TableName=TABLE, Item={**plain, "sk": {"S": "s3"}})
    client.get_item(TableName=TABLE, Key=key)
    client.get_item(TableName=TABLE, Key={**key, "sk": {"S": "s3"}}, ConsistentRead=True)
    client.get_item(TableName=TABLE, Key={"pk": {"S": "none"}, "sk": {"S": "x"}})
    client.get_item(
        TableName=TABLE,
        Key={**key, "sk": {"S": "s3"}},
        ProjectionExpression="#t, #m.k",
        ExpressionAttributeNames={"#t": "text", "#m": "map"},
    )
    for limit in (1, 10):
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p1"}},
            Limit=limit,
            ReturnConsumedCapacity="TOTAL",
        )
    client.query(
        TableName=TABLE,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :g",
        ExpressionAttributeValues={":g": {"S": "g"}},
        Limit=2,
    )
    client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "p1"}},
        Select="COUNT",
    )
    client.scan(TableName=TABLE, Limit=2)
    client.batch_get_item(
        RequestItems={
            TABLE: {"Keys": [key, {**key, "sk": {"S": "s3"}}, {**key, "sk": {"S": "zz"}}]}
        }
    )
    client.batch_write_item(
        RequestItems={
            TABLE: [
                {"PutRequest": {"Item": {**plain, "sk": {"S": "s4"}}}},
                {"DeleteRequest": {"Key": {**key, "sk": {"S": "s2"}}}},
            ]
        }
    )
    for returns in ("ALL_NEW", "UPDATED_OLD", "UPDATED_NEW", "ALL_OLD", "NONE"):
        client.update_item(
            TableName=TABLE,
            Key={**key, "sk": {"S": "s3"}},
            UpdateExpression="SET #n = #n + :one, #l = list_append(#l, :more) REMOVE #x",
            ExpressionAttributeNames={"#n": "number", "#l": "list", "#x": "nothing"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":more": {"L": [{"BOOL": False}]}},
            ReturnValues=returns,
        )
    client.delete_item(TableName=TABLE, Key={**key, "sk": {"S": "s4"}}, ReturnValues="ALL_OLD")
    client.transact_get_items(
        TransactItems=[
            {"Get": {"TableName": TABLE, "Key": {**key, "sk": {"S": "s3"}}}},
            {"Get": {"TableName": TABLE, "Key": {**key, "sk": {"S": "missing"}}}},
        ]
    )
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**plain, "sk": {"S": "s5"}}}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {**key, "sk": {"S": "s3"}},
                    "UpdateExpression": "SET flag = :f",
                    "ExpressionAttributeValues": {":f": {"BOOL": False}},
                }
            },
        ],
        ReturnConsumedCapacity="TOTAL",
    )
    with contextlib.suppress(client.exceptions.TransactionCanceledException):
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {**plain, "sk": {"S": "s5"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )
    with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName=TABLE,
            Item={**plain, "sk": {"S": "s5"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )


CONDITIONS = [
    ("attribute_not_exists(pk)", {}, {}),
    ("#v = :v", {"#v": "version"}, {":v": {"N": "3"}}),
    ("#v = :v", {"#v": "version"}, {":v": {"N": "4"}}),
    (
        "attribute_exists(gsi3pk) AND "
        "(attribute_not_exists(claimed_until) OR claimed_until < :now)",
        {},
        {":now": {"S": "2026-12-01T12:00:00"}},
    ),
    ("#b = :b", {"#b": "blob"}, {":b": {"B": b"\x01"}}),  # bytes, as moto's parser decodes
    (
        "begins_with(sk, :p) AND NOT #m IN (:a, :b)",
        {"#m": "pk"},
        {":p": {"S": "SUB"}, ":a": {"S": "x"}, ":b": {"S": "y"}},
    ),
]


def test_cached_condition_parses_answer_as_moto_parses_them() -> None:
    """Every condition evaluates the same on every item, and reports the same names and values
    found, parsed once by moto and then from the cache; an invalid expression raises each time."""
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    moto_parse = ConditionExpressionParser.parse
    while hasattr(moto_parse, "uncached"):
        moto_parse = moto_parse.uncached
    undo = cached_conditions()
    items = [
        Item(
            DynamoType({"S": "C#1"}),
            DynamoType({"S": sk}),
            {"pk": {"S": "C#1"}, "sk": {"S": sk}, **attributes},
        )
        for sk, attributes in (
            ("SUB#1", {"version": {"N": "3"}, "members": {"L": [{"S": "a"}, {"S": "b"}]}}),
            ("SUB#2", {"version": {"N": "4"}, "gsi3pk": {"S": "OUTBOX#1"}}),
            (
                "REC#1",
                {"gsi3pk": {"S": "OUTBOX#0"}, "claimed_until": {"S": "2026-12-01T11:00:00"}},
            ),
        )
    ]
    try:
        for expression, names, values in CONDITIONS:
            own = ConditionExpressionParser(expression, names, values)
            expected = moto_parse(own)
            for _ in range(3):  # the first parse fills the cache, the others read it
                parser = ConditionExpressionParser(expression, names, values)
                op = parser.parse()
                assert [op.expr(item) for item in items] == [expected.expr(i) for i in items]
                assert parser.expr_attr_names_found == own.expr_attr_names_found
                assert parser.expr_attr_values_found == own.expr_attr_values_found
        for _ in range(2):
            with pytest.raises(Exception):  # noqa: B017 (moto's own error types)
                ConditionExpressionParser("version = = :v", {}, {":v": {"N": "1"}}).parse()
    finally:
        undo()


SIZED_VALUES: list[dict[str, Any]] = [
    {"S": "héllo"},
    {"S": ""},
    {"N": "-12.50"},
    {"BOOL": False},
    {"NULL": True},
    {"B": b"\x00\x01"},
    {"B": "AAE="},
    {"SS": ["a", "bé"]},
    {"NS": ["1", "2.5"]},
    {"BS": [b"ab", "cd"]},
    {"L": []},
    {"L": [{"S": "x"}, {"M": {"k": {"N": "1"}, "é": {"L": [{"BOOL": True}]}}}]},
    {"M": {"a": {"SS": ["z"]}, "b": {"M": {}}, "c": {"NS": ["7"]}}},
]


def test_items_sized_once_measure_and_refuse_as_moto_does() -> None:
    """Every attribute type measures the same; an item is built with the same attributes, and
    refused (ItemSizeTooLarge) from the same size on, as by moto's own check per attribute."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    def build(attrs: dict[str, Any]) -> Any:
        try:
            return Item(DynamoType({"S": "p"}), None, attrs)
        except ItemSizeTooLarge:
            return "too large"

    attrs = {f"a{n}": value for n, value in enumerate(SIZED_VALUES)}
    # Around the limit: pk (2 + 1 bytes) and x (1 + length).
    lengths = range(404_990, 405_000)
    wide = {f"attribute{n}": {"S": "v"} for n in range(200)}
    installed_init, installed_size = Item.__init__, DynamoType.size  # the suite's own
    as_moto = _replaced(
        (Item, "__init__", getattr(installed_init, "general", installed_init)),
        (DynamoType, "size", getattr(installed_size, "general", installed_size)),
    )
    try:
        sizes_as_moto = [DynamoType(value).size() for value in SIZED_VALUES]
        built_by_moto = build(attrs)
        refusals_by_moto = [build({"pk": {"S": "p"}, "x": {"S": "y" * n}}) for n in lengths]
        sizes_measured_by_moto = _size_calls(lambda: build(wide))
        undo = items_sized_once()
        try:
            assert [DynamoType(value).size() for value in SIZED_VALUES] == sizes_as_moto
            built = build(attrs)
            refusals = [build({"pk": {"S": "p"}, "x": {"S": "y" * n}}) for n in lengths]
            sizes_measured = _size_calls(lambda: build(wide))
        finally:
            undo()
    finally:
        as_moto()
    assert sizes_measured == 200  # once each, where moto measured 1 + 2 + ... + 200
    assert sizes_measured_by_moto == 200 * 201 // 2

    assert built.attrs == built_by_moto.attrs
    assert list(built.attrs) == list(built_by_moto.attrs)
    assert type(built.attrs) is type(built_by_moto.attrs)  # later SETs still check the size
    assert built.size() == built_by_moto.size()
    outcomes = [r if isinstance(r, str) else "kept" for r in refusals]
    assert outcomes == [r if isinstance(r, str) else "kept" for r in refusals_by_moto]
    assert "kept" in outcomes and "too large" in outcomes  # the limit lies inside the range


def _size_calls(action: Callable[[], Any]) -> int:
    from moto.dynamodb.models.dynamo_type import DynamoType

    size = DynamoType.size
    calls = 0

    def counted(self: Any) -> int:
        nonlocal calls
        calls += 1
        return size(self)

    undo = _replaced((DynamoType, "size", counted))
    try:
        action()
    finally:
        undo()
    return calls


def test_request_bodies_read_as_json_are_the_parameters_moto_would_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every item operation's request, parsed by moto's shape walk and read as JSON (binary
    values decoded from base64): equal parameters; other operations go moto's way."""
    from moto.core.responses import BaseResponse
    from moto.dynamodb.responses import DynamoHandler

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    installed = vars(DynamoHandler).get("parse_parameters")  # the suite's own (tests/conftest.py)
    moto_parse = getattr(installed, "general", BaseResponse.parse_parameters)
    general_parses: list[str] = []

    def counted(self: Any, request: Any) -> None:
        general_parses.append(self._get_action())
        moto_parse(self, request)

    parsed: list[tuple[str, Any, Any, bool, bytes]] = []
    as_installed = _replaced((DynamoHandler, "parse_parameters", counted))
    undo = json_parameters()
    fast = DynamoHandler.parse_parameters

    def both(self: Any, request: Any) -> None:
        moto_parse(self, request)
        expected, self.params = self.params, None
        before = len(general_parses)
        fast(self, request)
        went_general = len(general_parses) > before
        parsed.append((self._get_action(), expected, self.params, went_general, request.data))

    try:
        with mock_aws():
            DynamoHandler.parse_parameters = both  # type: ignore[method-assign]
            client = moto_client("dynamodb", region_name="us-east-1")
            ensure_table(client, TABLE)
            _every_item_operation(client)
            client.put_item(
                TableName=TABLE,
                Item={"pk": {"S": "b"}, "sk": {"S": "b"}, "set": {"BS": [b"\x00", b"\xff"]}},
                ConditionExpression="attribute_not_exists(#s) OR #s = :bytes",
                ExpressionAttributeNames={"#s": "set"},
                ExpressionAttributeValues={":bytes": {"B": b"\x01"}},
            )
    finally:
        undo()
        as_installed()
    item_requests = [p for p in parsed if p[0] in ITEM_OPERATIONS]
    assert len(item_requests) > 20
    assert {p[0] for p in item_requests} == ITEM_OPERATIONS
    for name, expected, got, _, _ in parsed:
        assert got == expected, name
    assert len([p for p in item_requests if b'"B": ' in p[4]]) >= 3  # binary values compared
    assert any(b'"BS": ' in p[4] for p in item_requests)
    assert not [p[0] for p in item_requests if p[3]]  # none went moto's way
    assert all(p[3] for p in parsed if p[0] not in ITEM_OPERATIONS)  # CreateTable, ...


def test_an_undo_puts_back_what_each_owner_held_itself() -> None:
    """`_replaced`: an own attribute comes back as it was; an inherited one is inherited again."""

    class Base:
        def name(self) -> str:
            return "base"

    class Child(Base):
        def own(self) -> str:
            return "own"

    own = vars(Child)["own"]
    undo = _replaced((Child, "name", lambda self: "patched"), (Child, "own", lambda self: "x"))
    assert (Child().name(), Child().own()) == ("patched", "x")
    undo()
    assert "name" not in vars(Child) and Child().name() == "base"
    assert vars(Child)["own"] is own


def test_dynamodb_requests_answered_directly_as_through_moto_flask_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every item operation (and the table's creation) sent through moto's own WSGI app to a
    real server, then the same requests replayed to `dynamodb_direct` on a fresh backend:
    the same statuses, headers and bodies (a request id and a date aside)."""
    import boto3
    from moto.dynamodb.models import dynamodb_backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server
    from werkzeug.test import Client

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    recorded: list[tuple[dict[str, Any], tuple[str, list[tuple[str, str]], bytes]]] = []
    through_flask = DomainDispatcherApplication(create_backend_app)

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        read_body_first(environ)
        body = environ["wsgi.input"].getvalue()
        request = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", "/"),
            "headers": {
                key[5:].replace("_", "-").title(): value
                for key, value in environ.items()
                if key.startswith("HTTP_")
            },
            "content_type": environ.get("CONTENT_TYPE", ""),
            "body": body,
        }
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        content = _read_all(through_flask(environ, keep))
        recorded.append((request, (answer["status"], answer["headers"], content)))
        return [content]

    dynamodb_backends.reset()
    server = make_server("127.0.0.1", 0, recording, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ensure_table(client, TABLE)
        _every_item_operation(client)
    finally:
        server.shutdown()
        serving.join()

    dynamodb_backends.reset()
    passed_on: list[str] = []
    moto_app = DomainDispatcherApplication(create_backend_app)

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        passed_on.append(environ.get("HTTP_X_AMZ_TARGET", ""))
        return moto_app(environ, start_response)

    direct = Client(dynamodb_direct(counted))
    operations = set()
    for request, (status, headers, content) in recorded:
        target = request["headers"].get("X-Amz-Target", "")
        operation = target.rpartition(".")[2]
        operations.add(operation)
        response = direct.open(
            request["path"],
            method=request["method"],
            headers=request["headers"],
            content_type=request["content_type"],
            data=request["body"],
        )
        assert response.status_code == int(status.split()[0]), operation
        ignored = {"date", "x-amzn-requestid", "x-amz-crc32", "content-length"}
        expected_headers = {(k.lower(), v) for k, v in headers if k.lower() not in ignored}
        got_headers = {(k.lower(), v) for k, v in response.headers if k.lower() not in ignored}
        assert got_headers == expected_headers, operation
        if operation in ITEM_OPERATIONS or not content.startswith(b"{"):
            assert response.data == content, operation
        else:  # a table's description holds times and ids made at the request
            assert json.loads(response.data).keys() == json.loads(content).keys(), operation
    assert operations >= ITEM_OPERATIONS
    assert passed_on == []  # no DynamoDB request went through moto's Flask app
    assert direct.get("/moto-api/").status_code == 200  # anything else still does
    assert passed_on == [""]
    dynamodb_backends.reset()


def _tree(node: Any) -> Any:
    """A parsed expression as plain data (its parent links left out), to compare trees."""
    if isinstance(node, list):
        return [_tree(child) for child in node]
    if hasattr(node, "__dict__"):
        fields = {k: _tree(v) for k, v in vars(node).items() if k != "parent"}
        return (type(node).__name__, fields)
    return node


def test_update_expressions_parsed_once_write_what_moto_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same random writes (updates in transactions and alone, failing ones included),
    with and without the kept trees: the same table; the kept trees never change."""
    from moto.dynamodb.exceptions import InvalidUpdateExpression
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    keys = [(p, f"s{n}") for p in ("x", "y") for n in range(6)]

    def run(rng_seed: int) -> list[dict[str, Any]]:
        with mock_aws():
            client = moto_client("dynamodb", region_name="us-east-1")
            ensure_table(client, TABLE)
            rng = random.Random(rng_seed)
            for _ in range(150):
                _random_write(client, rng, keys)
            return sorted(_every_item(client), key=lambda i: (i["pk"]["S"], i["sk"]["S"]))

    plain = run(7)
    undo = cached_update_expressions()
    try:
        parsed_before = {
            text: _tree(UpdateExpressionParser.make(text))  # type: ignore[attr-defined]
            for text in (
                "SET due_pk = :p, due_at = :a, gsi1pk = :p, gsi1sk = :a",
                "REMOVE due_pk, gsi1pk",
                "SET due_pk = :p REMOVE gsi1pk",
            )
        }
        kept = run(7)
        for text, tree in parsed_before.items():
            assert _tree(UpdateExpressionParser.make(text)) == tree, text  # type: ignore[attr-defined]
        same_tree = UpdateExpressionParser.make("REMOVE due_pk, gsi1pk")  # type: ignore[attr-defined]
        assert UpdateExpressionParser.make("REMOVE due_pk, gsi1pk") is same_tree  # type: ignore[attr-defined]
        for _ in range(2):  # an invalid text is refused every time, as before
            with pytest.raises(InvalidUpdateExpression):
                UpdateExpressionParser.make("SET = nothing")  # type: ignore[attr-defined]
    finally:
        undo()
    assert kept == plain
    assert len(plain) > 5
