"""moto's server for the local stack, serving one request at a time.

moto server answers each request in a thread, but its backends are not thread-safe: a
TransactWriteItems deep-copies the tables without a guard, so concurrent requests answered 500
("dictionary changed size during iteration") and a transaction's all-or-nothing could break.
The tests serialize in-process moto at the botocore boundary (tests/support/atomic_requests.py);
this does the same for the server: moto's own WSGI app behind one lock. Connections are still
accepted in threads, so a slow client never blocks the others' accept.

moto also backs up every table a TransactWriteItems names with a deep copy before it runs, so
each transaction costs time in proportion to the whole table (a second and more once the table
holds a few thousand items). With requests serialized, `journal_transactions` backs up only the
items the transaction names and puts them back if it fails: the same all-or-nothing, at a cost
that no longer grows with the table.

And moto answers every Query, on the table or on an index, by sorting and walking every item
of the table: once the table holds tens of thousands of items each Query took a large part of
a second. `indexed_queries` keeps, per table, which items each index partition (and each table
partition) holds, updated from the keys each write touches, and hands moto's own Query only
those items: moto still applies every condition, sort, page and projection itself.

On every request moto also re-lists its own package directory and re-inspects its handler
class; `cheaper_dispatch` remembers both answers.

And werkzeug's server closed every connection after one answer and then waited up to 10 ms
for stray bytes, so each request cost a new connection and a new server thread;
`keep_alive_handler` keeps connections open (each body is read whole before moto runs, so the
connection is always at its next request) and logs only 5xx answers. `cached_conditions` keeps
parsed condition expressions (moto parsed each three times per transaction item),
`cached_update_expressions` parsed update expressions (twice per Update), and
`fewer_collections` keeps Python's garbage collector from walking the whole table ever more
often as it grows. `items_sized_once` checks an item's size limit once per item (moto summed
every attribute again for each one it stored), and `json_parameters` reads item operations'
bodies as the JSON they are (moto walked the model's shapes for every value).
`dynamodb_direct` hands DynamoDB's requests to moto's handler past its domain dispatcher and
Flask. Figures: bench/README.md, "The local stack under load".
"""

from __future__ import annotations

import argparse
import base64
import functools
import http
import inspect
import io
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HTTP_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_ABSENT = object()


def _replaced(*replacements: tuple[Any, str, Any]) -> Callable[[], None]:
    """Set each (module or class, name, value); returns the undo, which puts back what each
    owner held itself (a class that only inherited the name inherits it again)."""
    previous = [(owner, name, vars(owner).get(name, _ABSENT)) for owner, name, _ in replacements]
    for owner, name, value in replacements:
        setattr(owner, name, value)

    def undo() -> None:
        for owner, name, value in reversed(previous):
            if value is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, value)

    return undo


def _read_all(answer: Iterable[bytes]) -> bytes:
    """A WSGI answer's body, read whole; the answer closed after (as a WSGI server must)."""
    try:
        return b"".join(answer)
    finally:
        close = getattr(answer, "close", None)
        if close is not None:
            close()


def serialized(app: WsgiApp) -> WsgiApp:
    """`app` with its requests run one at a time, answer bodies read inside the lock.

    The server's handler (`keep_alive_handler`) has read each request's body before this
    runs: read inside the lock (by moto, when it parses the request), a client slow to send
    its body (a busy process of the stack) held every other request up meanwhile: under an
    advance of 500 renewals the lock was held for 42% of the time, three quarters of that
    waiting on sockets."""
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            return [_read_all(app(environ, start_response))]

    return one_at_a_time


def read_body_first(environ: dict[str, Any]) -> None:
    """Replace the request's input stream with its whole body, read now (Content-Length
    bytes, or a chunked body to its end; none without either)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def cheaper_dispatch() -> Callable[[], None]:
    """moto lists its package directory (to recognise service names as hosts) and inspects
    the handler class's methods on every request; both answers never change in a running
    server, so remember them. Returns the undo."""
    import moto.backends as moto_backends
    import moto.core.responses as moto_responses  # its own name for the moto.core.utils one

    list_modules = moto_backends.list_of_moto_modules
    method_names = moto_responses.method_names_from_class  # type: ignore[attr-defined]
    modules = tuple(list_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    return _replaced(
        (moto_backends, "list_of_moto_modules", list_of_moto_modules),
        (moto_responses, "method_names_from_class", functools.cache(method_names)),
    )


def journal_transactions() -> Callable[[], None]:
    """Make moto's TransactWriteItems back up the items it writes instead of whole tables;
    returns the undo.

    Safe only with requests serialized (`serialized`): nothing else runs between the backup
    and the restore."""
    import copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    class _KeepTables:
        """`copy` as moto's backend module sees it: a Table is not copied (journaled instead)."""

        @staticmethod
        def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    whole_table_backup = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        journal: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            saved = _saved_item(self, entry)
            if saved is not None:
                journal.append(saved)
        try:
            whole_table_backup(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(journal):
                if attributes is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise

    return _replaced(
        (dynamodb_models, "copy", _KeepTables),
        (DynamoDBBackend, "transact_write_items", transact_write_items),
    )


def _saved_item(
    backend: Any, entry: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """(table, key, the item's attributes now or None) for one transaction entry; None when the
    entry is malformed (moto refuses it before writing anything)."""
    try:
        operation, request = next(iter(entry.items()))
        table_name = request["TableName"]
        table = backend.get_table(table_name)
        if operation == "Put":
            key = {table.hash_key_attr: request["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = request["Item"][table.range_key_attr]
        else:
            key = request["Key"]
        current = backend.get_item(table_name, key)
    except Exception:
        return None
    if current is None:
        return table_name, key, None
    # moto's `to_json` builds maps and lists anew; a set's list is the item's own.
    attributes = {
        name: {kind: list(value) if isinstance(value, list) else value}
        for name, stored in current.to_json()["Attributes"].items()
        for kind, value in stored.items()
    }
    return table_name, key, attributes


def fast_string_comparisons() -> Callable[[], None]:
    """moto compares key values through `DynamoType.cast_value`, which tests every other type
    first; a Query compares (and sorts by) the keys of every item in the table, so for string
    keys (all of ours) that test was most of a Query's time. Same results, strings first."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    general = DynamoType.cast_value.fget  # type: ignore[attr-defined]

    def cast_value(self: Any) -> Any:
        return self.value if self.type == "S" else general(self)

    return _replaced((DynamoType, "cast_value", property(cast_value)))


# DynamoDB's item operations: their results are already in the wire format (attribute-value
# maps of strings, numbers as strings, booleans, lists and maps).
ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _base64_bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON")


def fast_item_responses() -> Callable[[], None]:
    """moto serializes every response by walking the operation's output shape member by
    member (botocore's model, one call per value): for an item operation that was most of a
    request's time, more than the operation itself. Its result is already DynamoDB's JSON, so
    for these operations it is written out with `json.dumps`, the serializer's own last step,
    keeping the members of the operation's output shape, binary values in base64 as the
    serializer writes blobs (the outbox's records hold their events gzipped: each page of them
    took moto a third of a second the general way); a result `json` cannot write otherwise
    (dates) goes the general way. Same bodies: `tests/integration/test_local_moto_server.py`
    compares the two on every item operation."""
    import json

    from moto.core.responses import ActionResult

    general = ActionResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if (
            context.service_model.service_name != "dynamodb"
            or context.operation_model.name not in ITEM_OPERATIONS
            or isinstance(self.result, Exception)
            or not isinstance(self.result, dict)
        ):
            return general(self, context)
        members = context.operation_model.output_shape.members
        # moto adds a few keys of its own (`ConsumedCapacityUnits`): the shape has no place.
        result = {name: value for name, value in self.result.items() if name in members}
        try:
            body = json.dumps(result, default=_base64_bytes)
        except (TypeError, ValueError):
            return general(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    execute_result.general = general  # type: ignore[attr-defined]  # for the comparing test
    return _replaced((ActionResult, "execute_result", execute_result))


ItemKey = tuple[Any, Any]  # (hash DynamoType, range DynamoType or None), as moto keys `Table.items`


class _IndexPartitions:
    """Which items each (index, string hash value) partition of one table holds.

    Built from the whole table on first use (or when moto swapped the table's item dict, as a
    restore does); afterwards only the keys that writes touched since the last Query are
    re-read. A partition may hold a key whose item since moved elsewhere only until the next
    refresh; moto's Query filters its candidates anyway, so only a missing item could matter,
    and every write path marks its key."""

    def __init__(self) -> None:
        self.source: object = None
        self.dirty: set[ItemKey] = set()
        self.members: dict[tuple[str, str], set[ItemKey]] = {}
        self.placed: dict[ItemKey, list[tuple[str, str]]] = {}

    def candidates(self, table: Any, index_name: str, value: str) -> list[Any]:
        self._refresh(table)
        found = []
        for hash_key, range_key in self.members.get((index_name, value), ()):
            item = _stored_item(table, hash_key, range_key)
            if item is not None:
                found.append(item)
        return found

    def _refresh(self, table: Any) -> None:
        if self.source is not table.items:
            self.source = table.items
            self.members.clear()
            self.placed.clear()
            self.dirty = {(item.hash_key, item.range_key) for item in _every_item(table)}
        for key in self.dirty:
            for partition in self.placed.pop(key, []):
                self.members[partition].discard(key)
            item = _stored_item(table, *key)
            if item is None:
                continue
            partitions = [
                (index_name, value.value)
                for index_name, attribute in _hash_attributes(table)
                if (value := item.attrs.get(attribute)) is not None and value.type == "S"
            ]
            for partition in partitions:
                self.members.setdefault(partition, set()).add(key)
            if partitions:
                self.placed[key] = partitions
        self.dirty = set()


def _every_item(table: Any) -> list[Any]:
    if table.range_key_attr:
        return [item for by_range in table.items.values() for item in by_range.values()]
    return list(table.items.values())


def _stored_item(table: Any, hash_key: Any, range_key: Any) -> Any:
    if table.range_key_attr:
        by_range = table.items.get(hash_key)
        return None if by_range is None else by_range.get(range_key)
    return table.items.get(hash_key)


def _hash_attributes(table: Any) -> list[tuple[str, str]]:
    """(index name, its hash key attribute) of every index with a single hash key."""
    found = []
    for index in table.all_indexes():
        hashes = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
        if len(hashes) == 1:
            found.append((index.name, hashes[0]))
    return found


def indexed_queries() -> Callable[[], None]:
    """Make moto's Query read only the partition it asks for (see the module docstring);
    returns the undo.

    Safe only with requests serialized (`serialized`): a Query briefly gives the table an
    `all_items` of its own."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    partitions: weakref.WeakKeyDictionary[Any, _IndexPartitions] = weakref.WeakKeyDictionary()
    table_put = Table.put_item
    table_delete = Table.delete_item
    backend_update = DynamoDBBackend.update_item
    table_query = Table.query
    query_signature = inspect.signature(table_query)

    def touch(table: Any, key_attributes: dict[str, Any]) -> None:
        known = partitions.get(table)
        if known is None:
            return  # built from the whole table on its first Query
        try:
            hash_key = DynamoType(key_attributes[table.hash_key_attr])
            range_key = (
                DynamoType(key_attributes[table.range_key_attr]) if table.range_key_attr else None
            )
        except (KeyError, TypeError):
            known.source = None  # a key we cannot read: rebuild from the whole table
            return
        known.dirty.add((hash_key, range_key))

    def put_item(self: Any, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return table_put(self, item_attrs, *args, **kwargs)
        finally:
            touch(self, item_attrs)

    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        try:
            return table_delete(self, hash_key, range_key)
        finally:
            known = partitions.get(self)
            if known is not None:
                known.dirty.add((hash_key, range_key))

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kw: Any) -> Any:
        try:
            return backend_update(self, table_name, key, *args, **kw)
        finally:
            if table_name in self.tables:
                touch(self.tables[table_name], key)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = query_signature.bind(self, *args, **kwargs).arguments
        candidates = _query_candidates(self, given, partitions)
        if candidates is None:
            return table_query(self, *args, **kwargs)
        self.all_items = lambda: candidates
        try:
            return table_query(self, *args, **kwargs)
        finally:
            del self.all_items

    return _replaced(
        (Table, "put_item", put_item),
        (Table, "delete_item", delete_item),
        (DynamoDBBackend, "update_item", update_item),
        (Table, "query", query),
    )


def _query_candidates(
    table: Any, given: dict[str, Any], partitions: weakref.WeakKeyDictionary[Any, _IndexPartitions]
) -> list[Any] | None:
    """The items a Query can find: its table partition, or its index partition when the index
    has one string hash key; None when moto must walk the table (anything else)."""
    index_name = given.get("index_name")
    if not index_name:
        hash_key = given.get("hash_key")
        if hash_key is None:
            return None
        if table.range_key_attr:
            return list(table.items.get(hash_key, {}).values())
        return [table.items[hash_key]] if hash_key in table.items else []
    conditions = given.get("hash_key_conditions") or []
    attributes = dict(_hash_attributes(table))
    if len(conditions) != 1 or index_name not in attributes:
        return None
    attribute, value = conditions[0]
    if attribute != attributes[index_name] or value.type != "S":
        return None
    known = partitions.get(table)
    if known is None:
        known = partitions[table] = _IndexPartitions()
    return known.candidates(table, index_name, value.value)


PARSED_CONDITIONS_KEPT = 4096


def cached_conditions() -> Callable[[], None]:
    """moto parses a condition expression three times for each item of a TransactWriteItems
    (to validate the request, in the transaction, in the Put), each parse lexing the text
    character by character: half of a renewal's transaction. The parsed tree is pure (its
    evaluation reads the item and changes nothing), so it is kept per (expression, names,
    values), with the names and values it found, for the last `PARSED_CONDITIONS_KEPT`
    distinct ones. Returns the undo."""
    import json
    from collections import OrderedDict

    from moto.dynamodb.comparisons import ConditionExpressionParser

    parse = ConditionExpressionParser.parse
    kept: OrderedDict[tuple[str, str, str], tuple[Any, list[str], list[str]]] = OrderedDict()
    lock = threading.Lock()

    def cached_parse(self: Any) -> Any:
        if not self.condition_expression:
            return parse(self)
        key = (
            self.condition_expression,
            json.dumps(self.expression_attribute_names, sort_keys=True),
            # Binary values are bytes: written as their repr (under their "B" or "BS").
            json.dumps(self.expression_attribute_values, sort_keys=True, default=repr),
        )
        with lock:
            hit = kept.get(key)
            if hit is not None:
                kept.move_to_end(key)
        if hit is None:
            op = parse(self)  # an invalid expression raises, every time
            hit = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
            with lock:
                kept[key] = hit
                while len(kept) > PARSED_CONDITIONS_KEPT:
                    kept.popitem(last=False)
        else:
            self.expr_attr_names_found.extend(hit[1])
            self.expr_attr_values_found.extend(hit[2])
        return hit[0]

    cached_parse.uncached = parse  # type: ignore[attr-defined]  # for the comparing test
    return _replaced((ConditionExpressionParser, "parse", cached_parse))


def cached_update_expressions() -> Callable[[], None]:
    """moto parses an update expression twice for each Update of a TransactWriteItems (to
    check the names it uses, then to apply it), token by token: a fifth of its time in an
    Update. The tree depends on the text alone and moto never changes it (its validator works
    on a deep copy; the rest only reads it), so the trees of the last
    `PARSED_CONDITIONS_KEPT` distinct texts are kept. Returns the undo."""
    from moto.dynamodb.parsing import expressions

    parser: Any = expressions.UpdateExpressionParser  # type: ignore[attr-defined]
    parse = parser.make.__func__
    kept = functools.lru_cache(maxsize=PARSED_CONDITIONS_KEPT)(
        lambda expression: parse(parser, expression)
    )

    def make(cls: Any, expression: str) -> Any:
        return kept(expression) if cls is parser else parse(cls, expression)

    return _replaced((parser, "make", classmethod(make)))


# moto's own item size limit (dynamo_type.LimitedSizeDict): DynamoDB's is 400 KB, and moto
# measured the real refusal between 409 and 410 KB.
MOTO_ITEM_SIZE_LIMIT = 405_000


def items_sized_once() -> Callable[[], None]:
    """moto checks an item's size limit on every attribute it stores, summing the sizes of all
    the attributes stored before (`LimitedSizeDict.__setitem__`): building an item of n
    attributes walked n^2 values, a third of the moto server's CPU under a test-clock advance.
    An item is now built with its size summed once: the same refusal (sizes only add up, so a
    prefix over the limit means the whole is), the same attributes. And an attribute's size is
    moto's rule without a `DynamoType` built per nested value. Returns the undo."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    general_init = Item.__init__
    general_size = DynamoType.size

    # moto's `bytesize` (a str as UTF-8, bytes as they are) is written out in place: a call
    # per value made building an item a tenth slower.
    def size(self: Any) -> int:
        kind, value = self.type, self.value
        if kind == "S":
            return len(value.encode("utf-8"))
        if kind == "N":
            return len(str(value))
        if kind == "M":
            return sum(
                len(key.encode("utf-8")) + (v if type(v) is DynamoType else DynamoType(v)).size()
                for key, v in value.items()
            )
        if kind == "L":
            return sum(v.size() for v in value)
        if kind == "NS":
            return sum(len(str(v)) for v in value)
        if kind in ("SS", "BS"):
            return sum(len(v if isinstance(v, bytes) else v.encode("utf-8")) for v in value)
        if isinstance(value, bool):
            return 1
        return len(value if isinstance(value, bytes) else value.encode("utf-8"))

    def sized_once(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        size_in_bytes = sum(len(key.encode("utf-8")) + v.size() for key, v in values.items())
        if size_in_bytes > MOTO_ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.update(self.attrs, values)

    size.general = general_size  # type: ignore[attr-defined]  # for the comparing test
    sized_once.general = general_init  # type: ignore[attr-defined]
    return _replaced((DynamoType, "size", size), (Item, "__init__", sized_once))


def _binary_decoded(value: dict[str, Any]) -> dict[str, Any]:
    """A binary attribute value ({"B": base64} or {"BS": [base64, ...]}) with its bytes decoded,
    as moto's parser decodes blobs; any other JSON object as it is."""
    if len(value) == 1:
        if isinstance(value.get("B"), str):
            return {"B": base64.b64decode(value["B"])}
        members = value.get("BS")
        if isinstance(members, list) and all(isinstance(m, str) for m in members):
            return {"BS": [base64.b64decode(m) for m in members]}
    return value


def json_parameters() -> Callable[[], None]:
    """moto parses every request body by walking the operation's input shape (botocore's
    model, one call per value, every attribute of every item): a tenth of the moto server's
    CPU. For DynamoDB's item operations that walk returns what `json.loads` does, but for
    binary attribute values (decoded from base64, as `_binary_decoded` does), and members the
    shape does not have and nulls (dropped), which botocore never sends. Compared on every item
    operation in tests/integration/test_local_moto_server.py. Returns the undo."""
    import json

    from moto.dynamodb.responses import DynamoHandler

    general = DynamoHandler.parse_parameters

    def parse_parameters(self: Any, request: Any) -> None:
        if self._get_action() not in ITEM_OPERATIONS:
            general(self, request)
            return
        body = request.data
        self.params = json.loads(body, object_hook=_binary_decoded) if body else {}

    parse_parameters.general = general  # type: ignore[attr-defined]  # for the comparing test
    return _replaced((DynamoHandler, "parse_parameters", parse_parameters))


DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."


def dynamodb_direct(app: WsgiApp) -> WsgiApp:
    """`app` with DynamoDB's requests handed straight to moto's DynamoHandler, as moto's Flask
    view would hand them (the same request class, URL, headers and error answer), past
    moto's domain dispatcher, Flask's request context and response object: about a tenth of the
    moto server's CPU under a test-clock advance. Every other request goes to `app`.
    Compared with the Flask path on every item operation in
    tests/integration/test_local_moto_server.py."""
    from botocore.exceptions import ClientError
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import BackendRequest
    from moto.settings import DISABLE_GLOBAL_CORS

    cors = not DISABLE_GLOBAL_CORS

    def direct(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET_PREFIX):
            return app(environ, start_response)
        request = BackendRequest(environ)
        try:
            status, headers, body = DynamoHandler.dispatch(
                request, request.raw_url, dict(request.headers)
            )
        except ClientError as error:  # as moto's view answers it
            status, headers, body = 400, {}, error.response["Error"]["Message"]
        content = body.encode() if isinstance(body, str) else body
        answer = [
            (str(name), str(value))
            for name, value in headers.items()
            if str(name).lower() != "content-length"
        ]
        if not any(name.lower() == "content-type" for name, _ in answer):
            answer.append(("Content-Type", "text/html; charset=utf-8"))  # Flask's default
        if cors:  # what moto's Flask-CORS adds to every answer
            answer.append(("Access-Control-Allow-Origin", "*"))
        answer.append(("Content-Length", str(len(content))))
        start_response(f"{int(status)} {HTTP_REASONS.get(int(status), '')}".rstrip(), answer)
        return [content]

    return direct


def fewer_collections() -> None:
    """The table lives in this process's heap: with a few hundred thousand items, each of
    Python's full garbage collections walked all of it, more often the more requests came.
    What is loaded now stays out of the collections (`gc.freeze`), and the youngest
    generation is collected after 50,000 new objects instead of 700."""
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def keep_alive_handler() -> type[Any]:
    """moto's request handler with HTTP/1.1 keep-alive, and an access log of 5xx answers only.

    werkzeug's server closes the connection after every answer (http.server cannot find the
    next request on a connection whose body the application left unread) and then waits up
    to 10 ms for stray body bytes; so each request cost a new connection, a new server thread
    and that wait: under a test-clock advance of 500 renewals, most of moto's time. This
    handler reads each body whole before moto runs (`read_body_first`), writes the answer
    with its length, and leaves the connection open for the client's next request. A log
    line for every request was another tenth; a 5xx is what a reader of the log looks for.
    """
    import traceback

    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveMotoRequestHandler(MotoRequestHandler):
        disable_nagle_algorithm = True

        def make_environ(self) -> dict[str, Any]:
            environ: dict[str, Any] = super().make_environ()
            read_body_first(environ)
            return environ

        def run_wsgi(self) -> None:
            answer: dict[str, Any] = {}
            written: list[bytes] = []

            def start_response(
                status: str, headers: list[tuple[str, str]], exc_info: Any = None
            ) -> Callable[[bytes], None]:
                answer["status"], answer["headers"] = status, headers
                return written.append

            try:
                returned = _read_all(self.server.app(self.make_environ(), start_response))
                body = b"".join(written) + returned  # what went through `write` comes first
                status, headers = answer["status"], answer["headers"]
            except Exception:
                self.log_error("%s", traceback.format_exc())
                self.close_connection = True
                status, headers = "500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]
                body = b"moto raised; see moto.log"
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            # Head and body in one write: two small writes on a kept-alive connection wait
            # out the client's delayed ACK (40 ms an answer).
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(body)
            self.flush_headers()

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            if str(code).startswith("5"):
                super().log_request(code, size)

    return KeepAliveMotoRequestHandler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server does: its URLs use it

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    journal_transactions()
    fast_string_comparisons()
    indexed_queries()
    cheaper_dispatch()
    fast_item_responses()
    cached_conditions()
    cached_update_expressions()
    items_sized_once()
    json_parameters()
    app = serialized(dynamodb_direct(DomainDispatcherApplication(create_backend_app)))
    fewer_collections()
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=keep_alive_handler()
    )
    print(f"moto (one request at a time) on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
