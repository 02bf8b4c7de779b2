"""DynamoDB faults injected at the botocore boundary of the app's client (a `before-call` hook).

Kinds, each armed for the next matching request and then spent:
    throttle             ProvisionedThroughputExceededException (botocore's retries spent)
    transaction_conflict TransactWriteItems cancelled with reason `TransactionConflict`
    after_charge         the first write after Stripe created a PaymentIntent fails (throttled):
                         the charge happened, its resolution was never written
    worker_death         the worker Lambda dies (a BaseException, not caught as a failed message)
                         on its Nth DynamoDB request, so nothing of its batch is deleted
Nothing of the code under test is patched: the hook raises what botocore itself would raise.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

DynamoFaultKind = Literal["throttle", "transaction_conflict", "after_charge"]
DYNAMO_FAULT_KINDS: tuple[DynamoFaultKind, ...] = (
    "throttle",
    "transaction_conflict",
    "after_charge",
)
WRITES = frozenset({"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})


class LambdaDied(BaseException):
    """The worker's process ended mid-batch (timeout, out of memory): nothing catches this."""


def throttled(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {
                "Code": "ProvisionedThroughputExceededException",
                "Message": "Rate of requests exceeds the allowed throughput.",
            },
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


def transaction_conflict(operation: str, items: int) -> ClientError:
    reasons = [{"Code": "None"} for _ in range(max(items, 1))]
    reasons[0] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
    return ClientError(
        {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": "Transaction cancelled, please refer cancellation reasons for specific"
                " reasons [TransactionConflict]",
            },
            "CancellationReasons": reasons,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


@dataclass
class DynamoFaults:
    armed: list[DynamoFaultKind] = field(default_factory=list)
    skip: int = 0  # requests to let through before an armed throttle / conflict fires
    after_charge_armed: bool = False
    charge_seen: bool = False
    die_after_calls: int | None = None
    calls: int = 0
    fired: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb", self._before_call)

    def arm(self, kind: DynamoFaultKind, skip: int = 0) -> None:
        with self.lock:
            self.skip = skip
            if kind == "after_charge":
                self.after_charge_armed, self.charge_seen = True, False
            else:
                self.armed.append(kind)

    def intent_created(self) -> None:
        """Stripe made a PaymentIntent: an armed `after_charge` fault fires on the next write."""
        with self.lock:
            if self.after_charge_armed:
                self.charge_seen = True

    def die_after(self, calls: int) -> None:
        with self.lock:
            self.die_after_calls, self.calls = calls, 0

    def disarm(self) -> None:
        with self.lock:
            self.armed.clear()
            self.after_charge_armed = self.charge_seen = False
            self.die_after_calls = None

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        operation = model.name
        with self.lock:
            if self.die_after_calls is not None:
                self.calls += 1
                if self.calls > self.die_after_calls:
                    self.die_after_calls = None
                    self.fired["worker_death"] += 1
                    raise LambdaDied(f"the worker died before {operation}")
            if self.after_charge_armed and self.charge_seen and operation in WRITES:
                self.after_charge_armed = self.charge_seen = False
                self.fired["after_charge"] += 1
                raise throttled(operation)
            if self.armed and self.skip > 0:
                self.skip -= 1
                return
            if "transaction_conflict" in self.armed and operation == "TransactWriteItems":
                self.armed.remove("transaction_conflict")
                self.fired["transaction_conflict"] += 1
                raise transaction_conflict(operation, len(params.get("TransactItems", [])))
            if "throttle" in self.armed and operation in WRITES | {"GetItem", "Query"}:
                self.armed.remove("throttle")
                self.fired["throttle"] += 1
                raise throttled(operation)
