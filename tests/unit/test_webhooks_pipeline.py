"""The webhook pipeline's decisions, with hand-written fakes for its ports (no AWS, no Stripe):
what is a duplicate, what is retried, what is transient (503) and what is stored as failed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib.adapters.clock import FixedClock
from chalicelib.domain.errors import Unavailable
from chalicelib.domain.webhook_events import EventStatus, Outcome, WebhookEvent
from chalicelib.services.webhooks import (
    Effect,
    EventTransaction,
    WebhookService,
    is_transient,
)

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def cancelled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": r} for r in reasons],
        },
        "TransactWriteItems",
    )


def aws_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutItem",
    )


class FakeStore:
    """Keeps records by id and honours `attribute_not_exists(pk) OR status = failed`."""

    def __init__(self) -> None:
        self.records: dict[str, WebhookEvent] = {}
        self.put_errors: list[Exception] = []

    def put_entry(self, event: WebhookEvent) -> dict[str, Any]:
        return {"Put": {"record": event}}

    def admits(self, event: WebhookEvent) -> bool:
        current = self.records.get(event.id)
        return current is None or current.status is EventStatus.FAILED

    def put(self, event: WebhookEvent) -> None:
        if self.put_errors:
            raise self.put_errors.pop(0)
        if not self.admits(event):
            raise aws_error("ConditionalCheckFailedException")
        self.records[event.id] = event

    def get(self, event_id: str) -> WebhookEvent | None:
        return self.records.get(event_id)


class FakeDynamo:
    """TransactWriteItems over the fake store: entry 0 is the event record; `effect_fails`
    makes the effect's own condition fail that many times; `errors` are raised first."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.effect_fails = 0
        self.errors: list[Exception] = []
        self.applied: list[dict[str, Any]] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        record: WebhookEvent = kwargs["TransactItems"][0]["Put"]["record"]
        effect = kwargs["TransactItems"][1:]
        if not self.store.admits(record):
            raise cancelled("ConditionalCheckFailed", *["None"] * len(effect))
        if self.effect_fails:
            self.effect_fails -= 1
            raise cancelled("None", "ConditionalCheckFailed")
        self.store.records[record.id] = record
        self.applied += effect
        return {}


def service(handler: Any) -> tuple[WebhookService, FakeStore, FakeDynamo]:
    store = FakeStore()
    dynamo = FakeDynamo(store)
    svc = WebhookService(store, dynamo, {"thing.happened": handler}, FixedClock(NOW), lambda: ())
    return svc, store, dynamo


def event(event_id: str = "evt_1", event_type: str = "thing.happened") -> WebhookEvent:
    payload = {"id": event_id, "type": event_type, "created": 1, "data": {"object": {}}}
    return WebhookEvent.received(payload, NOW)


def writes_one(_event: WebhookEvent, _tx: EventTransaction) -> Effect:
    return Effect(Outcome.processed("com_1"), [{"Update": {"thing": 1}}])


def test_an_effect_and_its_record_are_written_together_once() -> None:
    svc, store, dynamo = service(writes_one)
    assert svc.process(event()).status == "processed"
    assert svc.process(event()).status == "duplicate"
    assert dynamo.applied == [{"Update": {"thing": 1}}]
    assert store.records["evt_1"].status is EventStatus.PROCESSED
    assert store.records["evt_1"].community_id == "com_1"


def test_a_failed_effect_condition_is_planned_again() -> None:
    calls: list[int] = []

    def counting(e: WebhookEvent, tx: EventTransaction) -> Effect:
        calls.append(1)
        return writes_one(e, tx)

    svc, _, dynamo = service(counting)
    dynamo.effect_fails = 2
    assert svc.process(event()).status == "processed"
    assert len(calls) == 3


def test_an_effect_that_never_settles_is_transient() -> None:
    svc, store, dynamo = service(writes_one)
    dynamo.effect_fails = 99
    with pytest.raises(Unavailable):
        svc.process(event())
    assert store.records["evt_1"].status is EventStatus.FAILED


@pytest.mark.parametrize(
    "error",
    [
        aws_error("ProvisionedThroughputExceededException"),
        aws_error("ThrottlingException"),
        aws_error("InternalServerError", 500),
        cancelled("None", "TransactionConflict"),
        EndpointConnectionError(endpoint_url="http://dynamodb"),
    ],
)
def test_transient_aws_failures_are_503_and_kept_as_failed_for_the_retry(error: Exception) -> None:
    svc, store, dynamo = service(writes_one)
    dynamo.errors = [error]
    with pytest.raises(Unavailable):
        svc.process(event())
    assert store.records["evt_1"].status is EventStatus.FAILED
    assert svc.process(event()).status == "processed"  # the redelivery
    assert len(dynamo.applied) == 1


def test_a_bug_is_stored_as_failed_and_answered_without_retry() -> None:
    def broken(_e: WebhookEvent, _tx: EventTransaction) -> Effect:
        raise KeyError("amount")

    svc, store, _ = service(broken)
    assert svc.process(event()).status == "failed"
    assert store.records["evt_1"].status is EventStatus.FAILED
    assert "KeyError" in (store.records["evt_1"].error or "")


def test_a_permanent_aws_error_is_not_transient() -> None:
    assert not is_transient(aws_error("ValidationException"))
    assert not is_transient(aws_error("AccessDeniedException"))
    assert is_transient(aws_error("SomethingNew", 503))


def test_an_unhandled_type_is_stored_as_ignored_with_one_write() -> None:
    svc, store, dynamo = service(writes_one)
    assert svc.process(event(event_type="customer.created")).status == "ignored"
    assert store.records["evt_1"].status is EventStatus.IGNORED
    assert dynamo.applied == []


def test_a_handler_that_commits_through_the_event_transaction_is_not_written_twice() -> None:
    def commits(_e: WebhookEvent, tx: EventTransaction) -> Effect:
        tx.commit([{"Put": {"payment": 1}}], "com_9")
        return Effect(Outcome.processed("com_9"))

    svc, store, dynamo = service(commits)
    assert svc.process(event()).status == "processed"
    assert svc.process(event()).status == "duplicate"
    assert dynamo.applied == [{"Put": {"payment": 1}}]
    assert store.records["evt_1"].community_id == "com_9"


def test_replay_runs_only_failed_events() -> None:
    svc, store, dynamo = service(writes_one)
    dynamo.errors = [aws_error("ThrottlingException")]
    with pytest.raises(Unavailable):
        svc.process(event())
    assert svc.replay("evt_1").status is EventStatus.PROCESSED
    assert store.records["evt_1"].attempts == 2
    assert svc.replay("evt_1").status is EventStatus.PROCESSED
    assert len(dynamo.applied) == 1
