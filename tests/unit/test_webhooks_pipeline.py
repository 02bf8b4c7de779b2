"""The webhook pipeline's decisions, with hand-written fakes for its ports (no AWS, no Stripe):
what is a duplicate, what is retried, what is transient (503) and what is stored as failed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib.adapters.clock import FixedClock
from chalicelib.domain.errors import ConcurrentChange, Unavailable
from chalicelib.domain.webhook_events import EventStatus, Outcome, WebhookEvent
from chalicelib.services.webhooks import (
    Effect,
    EventScope,
    WebhookService,
    is_transient,
)
from tests.support.fakes import InMemoryEventStore, InMemoryStore

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


def service(handler: Any) -> tuple[WebhookService, InMemoryStore, InMemoryEventStore]:
    store = InMemoryStore()
    events = InMemoryEventStore(store)
    svc = WebhookService(
        events,
        store.unit_of_work,
        {"thing.happened": handler},
        FixedClock(NOW),
        lambda: (),
        livemode=lambda: False,
    )
    return svc, store, events


def event(event_id: str = "evt_1", event_type: str = "thing.happened") -> WebhookEvent:
    payload = {"id": event_id, "type": event_type, "created": 1, "data": {"object": {}}}
    return WebhookEvent.received(payload, NOW)


def writes_one(_event: WebhookEvent, scope: EventScope) -> Effect:
    """Gives profile prof_1 one unit of credit, through the event's unit of work."""
    with scope.unit_of_work("com_1")() as uow:
        uow.credit.change("com_1", "prof_1", "usd", 1)
        uow.commit()
    return Effect(Outcome.processed("com_1"))


def concurrent() -> ConcurrentChange:
    return ConcurrentChange("changed")


def test_an_effect_and_its_record_are_written_together_once() -> None:
    svc, store, _ = service(writes_one)
    assert svc.process(event()).status == "processed"
    assert svc.process(event()).status == "duplicate"
    assert store.credit == {("com_1", "prof_1", "usd"): 1}
    assert store.webhook_events["evt_1"].status is EventStatus.PROCESSED
    assert store.webhook_events["evt_1"].community_id == "com_1"


def test_a_failed_effect_condition_is_planned_again() -> None:
    calls: list[int] = []

    def counting(e: WebhookEvent, scope: EventScope) -> Effect:
        calls.append(1)
        return writes_one(e, scope)

    svc, store, _ = service(counting)
    store.fail_next_commits = [concurrent(), concurrent()]
    assert svc.process(event()).status == "processed"
    assert len(calls) == 3


def test_an_effect_that_never_settles_is_transient() -> None:
    svc, store, _ = service(writes_one)
    store.fail_next_commits = [concurrent() for _ in range(99)]
    with pytest.raises(Unavailable):
        svc.process(event())
    assert store.webhook_events["evt_1"].status is EventStatus.FAILED


@pytest.mark.parametrize(
    "error",
    [
        aws_error("ProvisionedThroughputExceededException"),
        aws_error("ThrottlingException"),
        aws_error("InternalServerError", 500),
        cancelled("None", "TransactionConflict"),
        EndpointConnectionError(endpoint_url="http://dynamodb"),
        Unavailable("The database is busy; retry shortly."),
    ],
)
def test_transient_aws_failures_are_503_and_kept_as_failed_for_the_retry(error: Exception) -> None:
    svc, store, _ = service(writes_one)
    store.fail_next_commits = [error]
    with pytest.raises(Unavailable):
        svc.process(event())
    assert store.webhook_events["evt_1"].status is EventStatus.FAILED
    assert svc.process(event()).status == "processed"  # the redelivery
    assert store.credit == {("com_1", "prof_1", "usd"): 1}


def test_a_bug_is_stored_as_failed_and_answered_without_retry() -> None:
    def broken(_e: WebhookEvent, _scope: EventScope) -> Effect:
        raise KeyError("amount")

    svc, store, _ = service(broken)
    assert svc.process(event()).status == "failed"
    assert store.webhook_events["evt_1"].status is EventStatus.FAILED
    assert "KeyError" in (store.webhook_events["evt_1"].error or "")


def test_a_permanent_aws_error_is_not_transient() -> None:
    assert not is_transient(aws_error("ValidationException"))
    assert not is_transient(aws_error("AccessDeniedException"))
    assert is_transient(aws_error("SomethingNew", 503))


def test_an_unhandled_type_is_stored_as_ignored_with_one_write() -> None:
    svc, store, _ = service(writes_one)
    assert svc.process(event(event_type="customer.created")).status == "ignored"
    assert store.webhook_events["evt_1"].status is EventStatus.IGNORED
    assert store.credit == {}
    assert store.commits == 0


def test_a_handler_whose_shared_code_commits_twice_applies_once() -> None:
    """Two units of work of one event's scope: the record makes the second a duplicate."""

    def commits_twice(_e: WebhookEvent, scope: EventScope) -> Effect:
        for _ in range(2):
            with scope.unit_of_work("com_9")() as uow:
                uow.credit.change("com_9", "prof_9", "usd", 5)
                uow.commit()
        return Effect(Outcome.processed("com_9"))

    svc, store, _ = service(commits_twice)
    assert svc.process(event()).status == "duplicate"
    assert store.credit == {("com_9", "prof_9", "usd"): 5}
    assert store.webhook_events["evt_1"].community_id == "com_9"


def test_a_read_only_scope_stores_the_record_alone() -> None:
    def reads_only(_e: WebhookEvent, scope: EventScope) -> Effect:
        with scope.unit_of_work("com_2")() as uow:
            assert uow.payments.find("com_2", "pay_1") is None
        return Effect(Outcome.ignored("nothing of ours", "com_2"))

    svc, store, _ = service(reads_only)
    assert svc.process(event()).status == "ignored"
    assert store.webhook_events["evt_1"].status is EventStatus.IGNORED
    assert store.commits == 0


def test_replay_runs_only_failed_events() -> None:
    svc, store, _ = service(writes_one)
    store.fail_next_commits = [aws_error("ThrottlingException")]
    with pytest.raises(Unavailable):
        svc.process(event())
    assert svc.replay("evt_1").status is EventStatus.PROCESSED
    assert store.webhook_events["evt_1"].attempts == 2
    assert svc.replay("evt_1").status is EventStatus.PROCESSED
    assert store.credit == {("com_1", "prof_1", "usd"): 1}
