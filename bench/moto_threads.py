"""In-process moto for a threaded bench: one request at a time, and transactions that do not
copy the whole table.

moto is the bench's stand-in for DynamoDB and SQS, not the thing measured, and two of its
properties would dominate a run with many worker threads:
- it is not thread-safe (two threads in one table's dict: "dictionary changed size during
  iteration"): every request goes through one lock, as if moto were a server answering one
  request at a time;
- TransactWriteItems deep-copies every table it writes to (for rollback) once per entry, so
  its cost grows with the table; here the copy keeps the table's item maps (a shallow copy)
  and deep-copies only the items the transaction names, which is all a rollback restores.

`moto_for_threads()` installs both for the duration of a `with` and counts rollbacks (a failed
conditional transaction), so a bench can show the shortcut never changed an answer.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class MotoStats:
    requests: int = 0
    transactions: int = 0
    rollbacks: int = 0


class _CheapTableCopy:
    """Stands in for the `copy` module inside moto's DynamoDB backend."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        # moto copies the table once per entry of a transaction: one snapshot serves them all.
        self.snapshots: dict[int, Any] = {}

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.dynamo_type import DynamoType
        from moto.dynamodb.models.table import Table

        if not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) in self.snapshots:
            return self.snapshots[id(value)]
        snapshot = copy.copy(value)
        items: Any = defaultdict(dict)
        for hash_value, stored in value.items.items():
            items[hash_value] = dict(stored) if isinstance(stored, dict) else stored
        for key in self.keys:
            hash_value = DynamoType(key[value.hash_key_attr])
            if value.range_key_attr is None:
                if hash_value in value.items:
                    items[hash_value] = copy.deepcopy(value.items[hash_value])
                continue
            range_value = DynamoType(key[value.range_key_attr])
            in_table: Any = value.items.get(hash_value)
            if isinstance(in_table, dict) and range_value in in_table:
                items[hash_value][range_value] = copy.deepcopy(in_table[range_value])
        snapshot.items = items
        self.snapshots[id(value)] = snapshot
        return snapshot


@contextmanager
def moto_for_threads() -> Iterator[MotoStats]:
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend

    stats = MotoStats()
    lock = threading.RLock()
    cheap = _CheapTableCopy()
    real_call = BotocoreStubber.__call__
    real_transact = DynamoDBBackend.transact_write_items
    real_copy = getattr(dynamodb_models, "copy")  # noqa: B009 (the module moto imported)

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            stats.requests += 1
            return real_call(self, event_name, request, **kwargs)

    def transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            stats.transactions += 1
            cheap.keys = [next(iter(entry.values()))["Key"] for entry in _keyed(transact_items)]
            try:
                real_transact(self, transact_items)
            except Exception:
                stats.rollbacks += 1
                raise
            finally:
                cheap.keys = []
                cheap.snapshots = {}

    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign]
    setattr(dynamodb_models, "copy", cheap)  # noqa: B010
    try:
        yield stats
    finally:
        BotocoreStubber.__call__ = real_call  # type: ignore[method-assign]
        DynamoDBBackend.transact_write_items = real_transact  # type: ignore[method-assign]
        setattr(dynamodb_models, "copy", real_copy)  # noqa: B010


def _keyed(transact_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries naming an item by `Key` (Put names it by its `Item`: the key attributes)."""
    keyed = []
    for entry in transact_items:
        op = next(iter(entry.values()))
        if "Key" in op:
            keyed.append(entry)
        elif "Item" in op:
            item = op["Item"]
            keyed.append({"Put": {"Key": {k: item[k] for k in ("pk", "sk") if k in item}}})
    return keyed
