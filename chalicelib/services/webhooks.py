"""Stripe webhooks: verify, route, apply once, store; replay and the list route.

One pipeline serves every source (a webhook delivery, a replay, the reconciliation job):

1. The handler for the event type reads what it needs and returns an `Effect`: the outcome and
   the TransactWriteItems entries that apply it (none when there is nothing to change: a late
   or repeated event, an ignored type). Handlers whose effect the payment service commits
   itself hand it an EventTransaction instead, which adds the event record to that commit.
2. The event record goes into the SAME transaction, first, with the condition
   `attribute_not_exists(pk) OR status = failed`. A cancelled transaction whose first reason is
   that condition means "already done": a duplicate, answered 200 with no effect.
3. The effect's own conditions (optimistic locking) failing means someone changed the objects
   between our read and our write: read again and re-plan, a few times.
4. Transient AWS failures (throttling, 5xx, timeouts) store the event as failed when they can
   and raise Unavailable (503) so Stripe redelivers; the redelivery finds a failed record and
   applies the effect then; so do conflicts that outlast the shared code's own retries. Any
   other error is a bug or bad data: stored as failed and answered 200 (Stripe retrying cannot
   help); an operator lists and replays it once it is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from chalicelib.domain.errors import ConcurrentChange, Conflict, NotFound, Unavailable
from chalicelib.domain.webhook_events import EventStatus, Outcome, WebhookEvent
from chalicelib.observability import count, logger
from chalicelib.services.ports import Clock

MAX_PLAN_ATTEMPTS = 3
# Error codes (and transaction cancellation reasons) a retry can fix.
TRANSIENT_AWS_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    }
)

DeliveryStatus = Literal["processed", "ignored", "failed", "duplicate"]


@dataclass(frozen=True)
class Effect:
    """What one event does: its outcome and the writes that apply it (in one transaction)."""

    outcome: Outcome
    writes: list[dict[str, Any]] = field(default_factory=list)


class DuplicateEvent(Exception):
    """The event record says this event was already processed (or ignored)."""


class EventTransaction:
    """The one transaction of one event, for handlers whose effect is committed by shared code
    (the payment resolution of services/charging.py): `commit(entries)` writes the event
    record, as processed, first in the same TransactWriteItems. A failed record condition
    raises DuplicateEvent; a failed condition of the effect raises ConcurrentChange, which the
    shared code answers by reading again, as it does for any concurrent writer."""

    def __init__(self, store: EventStore, dynamodb: Transactor, event: WebhookEvent, clock: Clock):
        self._store = store
        self._ddb = dynamodb
        self._event = event
        self._clock = clock
        self.committed: WebhookEvent | None = None

    def commit(self, entries: list[dict[str, Any]], community_id: str | None) -> None:
        done = self._event.concluded(Outcome.processed(community_id), self._clock.now())
        result = _transact(self._ddb, [self._store.put_entry(done), *entries])
        if result == "duplicate":
            raise DuplicateEvent(self._event.id)
        if result == "conflict":
            raise ConcurrentChange("The objects changed while the event was applied.")
        self.committed = done


class EventHandler(Protocol):
    def __call__(self, event: WebhookEvent, tx: EventTransaction) -> Effect: ...


@dataclass(frozen=True)
class Delivery:
    event_id: str
    status: DeliveryStatus
    community_id: str | None = None


class EventStore(Protocol):
    def put_entry(self, event: WebhookEvent) -> dict[str, Any]: ...
    def put(self, event: WebhookEvent) -> None: ...
    def get(self, event_id: str) -> WebhookEvent | None: ...


class Transactor(Protocol):
    def transact_write_items(self, **kwargs: Any) -> Any: ...


class WebhookService:
    def __init__(
        self,
        store: EventStore,
        dynamodb: Transactor,
        handlers: dict[str, EventHandler],
        clock: Clock,
        secrets: Callable[[], tuple[str, ...]],
    ) -> None:
        self._store = store
        self._ddb = dynamodb
        self._handlers = handlers
        self._clock = clock
        self._secrets = secrets

    def handles(self, event_type: str) -> bool:
        return event_type in self._handlers

    def receive(self, raw_body: bytes, signature: str | None) -> Delivery:
        """A delivery to POST /webhooks/stripe: 400 (InvalidRequest) before anything is stored."""
        from chalicelib.adapters.stripe.events import verify_event

        payload = verify_event(raw_body, signature, self._secrets())
        return self.process(WebhookEvent.received(payload, self._clock.now()))

    def replay(self, event_id: str) -> WebhookEvent:
        """Run a stored event through its handler again (only failed events are still open)."""
        stored = self._store.get(event_id)
        if stored is None:
            raise NotFound(f"Webhook event {event_id} not found.")
        if stored.status is EventStatus.FAILED:
            self.process(replace(stored, attempts=stored.attempts + 1))
        found = self._store.get(event_id)
        assert found is not None
        return found

    def process(self, event: WebhookEvent) -> Delivery:
        handler = self._handlers.get(event.type, ignore_unhandled_type)
        try:
            for _ in range(MAX_PLAN_ATTEMPTS):
                tx = EventTransaction(self._store, self._ddb, event, self._clock)
                try:
                    effect = handler(event, tx)
                except DuplicateEvent:
                    return self._delivered(event, "duplicate")
                if tx.committed is not None:
                    return self._delivered(tx.committed, "stored")
                done = event.concluded(effect.outcome, self._clock.now())
                result = self._commit(done, effect.writes)
                if result != "conflict":
                    return self._delivered(done, result)
            raise _EffectKeptChanging()
        except Unavailable:
            self._store_failure(event, "transient failure; Stripe will redeliver")
            raise
        except Exception as error:
            if is_transient(error):
                self._store_failure(event, f"transient failure: {_describe(error)}")
                raise Unavailable("A dependency failed transiently; retry shortly.") from None
            logger.exception("webhook_event_failed", extra={"event_id": event.id})
            failed = self._store_failure(event, _describe(error))
            return Delivery(event.id, "duplicate" if failed == "duplicate" else "failed")

    def _delivered(self, event: WebhookEvent, result: str) -> Delivery:
        status: DeliveryStatus = "duplicate" if result == "duplicate" else event.status.value
        count(f"Webhook_{status}")
        logger.info(
            "webhook_event",
            extra={"event_id": event.id, "type": event.type, "result": status},
        )
        return Delivery(event.id, status, event.community_id)

    def _commit(self, event: WebhookEvent, writes: list[dict[str, Any]]) -> str:
        """'stored', 'duplicate', or 'conflict' (the effect's own condition failed)."""
        from botocore.exceptions import ClientError

        if writes:
            return _transact(self._ddb, [self._store.put_entry(event), *writes])
        try:
            self._store.put(event)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return "duplicate"
            raise
        return "stored"

    def _store_failure(self, event: WebhookEvent, reason: str) -> str:
        """Best effort: record the event as failed so it can be listed and replayed."""
        failed = event.concluded(Outcome.failed(reason, event.community_id), self._clock.now())
        try:
            return self._commit(failed, [])
        except Exception:
            logger.exception("webhook_event_not_stored", extra={"event_id": event.id})
            return "unstored"


def _transact(dynamodb: Transactor, entries: list[dict[str, Any]]) -> str:
    """One TransactWriteItems whose first entry is the event record: 'stored', 'duplicate'
    (the record's condition failed) or 'conflict' (another entry's condition failed)."""
    from botocore.exceptions import ClientError

    try:
        dynamodb.transact_write_items(TransactItems=entries)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return "duplicate"
        if "ConditionalCheckFailed" in reasons:
            return "conflict"
        raise
    return "stored"


class _EffectKeptChanging(Exception):
    def __str__(self) -> str:
        return f"the objects kept changing under {MAX_PLAN_ATTEMPTS} attempts"


def ignore_unhandled_type(event: WebhookEvent, tx: EventTransaction) -> Effect:
    return Effect(Outcome.ignored(f"event type {event.type} is not handled"))


def is_transient(error: BaseException) -> bool:
    """A failure that a retry can fix: AWS throttling / 5xx, timeouts, lost connections."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(error, _EffectKeptChanging | Conflict):
        # The objects kept changing under the shared code's own retries (or DynamoDB reported
        # a TransactionConflict): a redelivery will find them settled.
        return True
    if isinstance(error, ConnectionError | HTTPClientError):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in TRANSIENT_AWS_CODES:
            return True
        if code == "TransactionCanceledException":
            reasons = {r.get("Code") for r in error.response.get("CancellationReasons", [])}
            return bool(reasons & TRANSIENT_AWS_CODES)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status) >= 500
    return False


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:1000]
