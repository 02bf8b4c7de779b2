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
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serialized(app: WsgiApp) -> WsgiApp:
    """`app` with its requests run one at a time, answer bodies read inside the lock."""
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with lock:
            result = app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    return one_at_a_time


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

    dynamodb_models.copy = _KeepTables  # type: ignore[attr-defined, assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        dynamodb_models.copy = copy  # type: ignore[attr-defined]
        DynamoDBBackend.transact_write_items = whole_table_backup  # type: ignore[method-assign]

    return undo


def _saved_item(
    backend: Any, entry: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """(table, key, the item's attributes now or None) for one transaction entry; None when the
    entry is malformed (moto refuses it before writing anything)."""
    import copy

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
    attributes = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
    return table_name, key, attributes


def fast_string_comparisons() -> Callable[[], None]:
    """moto compares key values through `DynamoType.cast_value`, which tests every other type
    first; a Query compares (and sorts by) the keys of every item in the table, so for string
    keys (all of ours) that test was most of a Query's time. Same results, strings first."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    general = DynamoType.cast_value.fget  # type: ignore[attr-defined]

    def cast_value(self: Any) -> Any:
        return self.value if self.type == "S" else general(self)

    general_property = DynamoType.cast_value
    DynamoType.cast_value = property(cast_value)  # type: ignore[assignment, method-assign]

    def undo() -> None:
        DynamoType.cast_value = general_property  # type: ignore[method-assign]

    return undo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server does: its URLs use it

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    journal_transactions()
    fast_string_comparisons()
    app = serialized(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    print(f"moto (one request at a time) on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
