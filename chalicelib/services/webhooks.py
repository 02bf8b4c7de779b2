"""Stripe webhooks: verify, route, apply once, store; replay and the list route.

One pipeline serves every source (a webhook delivery, a replay, the reconciliation job):

1. The handler for the event type reads what it needs and decides the outcome. When there is
   something to change it commits through `scope.unit_of_work(community_id)`: a unit of work
   whose FIRST entry is the event record (`attribute_not_exists(pk) OR status = failed`), so
   the de-duplication marker and the effect are written together or not at all. A failure of
   that first condition alone is `DuplicateEvent`: answered 200 with no effect.
2. A handler that changes nothing returns its outcome; the record is then stored on its own.
3. The effect's own conditions (optimistic locking) failing means someone changed the objects
   between our read and our write: the handler is run again from its reads, a few times.
4. Transient AWS failures (throttling, 5xx, timeouts) store the event as failed when they can
   and raise Unavailable (503) so Stripe redelivers; the redelivery finds a failed record and
   applies the effect then; so do conflicts that outlast the shared code's own retries. Any
   other error is a bug or bad data: stored as failed and answered 200 (Stripe retrying cannot
   help); an operator lists and replays it once it is fixed.
5. An event of the other Stripe mode (`livemode` not that of our Stripe key) is ignored before
   any handler: Stripe sends a live Connect endpoint the accounts' test-mode events too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from chalicelib.adapters.dynamodb.transactions import is_transient as is_transient_aws
from chalicelib.domain.errors import (
    ConcurrentChange,
    Conflict,
    DuplicateEvent,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from chalicelib.domain.webhook_events import (
    TRANSIENT_FAILURE,
    EventStatus,
    Outcome,
    WebhookEvent,
)
from chalicelib.observability import correlation, count, logger
from chalicelib.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from chalicelib.services.retrying import retrying

DeliveryStatus = Literal["processed", "ignored", "failed", "duplicate"]


@dataclass(frozen=True)
class Effect:
    """What one event did: its outcome (its writes, if any, were committed in its scope)."""

    outcome: Outcome


class EventScope:
    """The one unit of work of one event, for its handler.

    `unit_of_work(community_id)` is a factory of units of work that write the event record
    (as processed, for that community) first in their commit; shared code (the payment
    resolution of services/charging.py) takes it like any other factory. At most one of them
    commits: the record's condition makes a second one a DuplicateEvent."""

    def __init__(self, uow: UnitOfWorkFactory, event: WebhookEvent, clock: Clock) -> None:
        self._uow = uow
        self._event = event
        self._clock = clock
        self._opened: list[tuple[UnitOfWork, WebhookEvent]] = []

    @property
    def event(self) -> WebhookEvent:
        return self._event

    def unit_of_work(self, community_id: str | None) -> UnitOfWorkFactory:
        def open_one() -> UnitOfWork:
            done = self._event.concluded(Outcome.processed(community_id), self._clock.now())
            uow = self._uow()
            uow.record_webhook_event(done)
            self._opened.append((uow, done))
            return uow

        return open_one

    @property
    def committed(self) -> WebhookEvent | None:
        """The record as written, once a unit of work of this scope committed."""
        return next((done for uow, done in self._opened if uow.committed), None)


class EventHandler(Protocol):
    def __call__(self, event: WebhookEvent, scope: EventScope) -> Effect: ...


@dataclass(frozen=True)
class Delivery:
    event_id: str
    status: DeliveryStatus
    community_id: str | None = None


class EventStore(Protocol):
    def put(self, event: WebhookEvent) -> bool:
        """Store `event` on its own; False when it is already done (a duplicate)."""
        ...

    def get(self, event_id: str) -> WebhookEvent | None: ...

    def fits(self, event: WebhookEvent) -> bool:
        """Whether `event` can be stored at all (a record has a size limit)."""
        ...


class WebhookService:
    def __init__(
        self,
        store: EventStore,
        uow: UnitOfWorkFactory,
        handlers: dict[str, EventHandler],
        clock: Clock,
        secrets: Callable[[], tuple[str, ...]],
        livemode: Callable[[], bool],
    ) -> None:
        self._store = store
        self._uow = uow
        self._handlers = handlers
        self._clock = clock
        self._secrets = secrets
        self._livemode = livemode

    def handles(self, event_type: str) -> bool:
        return event_type in self._handlers

    def receive(self, raw_body: bytes, signature: str | None) -> Delivery:
        """A delivery to POST /webhooks/stripe: 400 (InvalidRequest) before anything is stored."""
        from chalicelib.adapters.stripe.events import verify_event

        try:
            payload = verify_event(raw_body, signature, self._secrets())
            event = WebhookEvent.received(payload, self._clock.now())
            if not self._store.fits(event):
                # Refused before anything runs: answered 200, it would be applied and then lost.
                raise InvalidRequest.for_field("body", "The event is too large to store.")
        except InvalidRequest as refused:
            # Our own words only: never the body, the header or the secret (docs/rules/logs.md).
            count("WebhookRejected")
            logger.warning(
                "webhook_rejected", extra={"reason": refused.message, "bytes": len(raw_body)}
            )
            raise
        return self.process(event)

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
        """Apply one event; every line logged meanwhile (a `state_change` it caused) names it."""
        with correlation(stripe_event_id=event.id):
            return self._process(event)

    def _process(self, event: WebhookEvent) -> Delivery:
        handler = self._handlers.get(event.type, ignore_unhandled_type)
        livemode = event.payload.get("livemode")
        if isinstance(livemode, bool) and livemode != self._livemode():
            # Stripe sends a live Connect endpoint the accounts' test-mode events too.
            handler = ignore_other_mode

        def apply_once() -> Delivery:
            """Run the handler from its reads; a lost race (ConcurrentChange) runs it again."""
            scope = EventScope(self._uow, event, self._clock)
            try:
                effect = handler(event, scope)
            except DuplicateEvent:
                return self._delivered(event, "duplicate")
            committed = scope.committed
            if committed is not None:
                return self._delivered(committed, "stored")
            done = event.concluded(effect.outcome, self._clock.now())
            stored = self._store.put(done)
            return self._delivered(done, "stored" if stored else "duplicate")

        try:
            try:
                return retrying(apply_once)
            except ConcurrentChange:
                raise _EffectKeptChanging() from None
        except Unavailable:
            self._store_failure(event, f"{TRANSIENT_FAILURE}; Stripe will redeliver")
            raise
        except Exception as error:
            if is_transient(error):
                self._store_failure(event, f"{TRANSIENT_FAILURE}: {_describe(error)}")
                raise Unavailable("A dependency failed transiently; retry shortly.") from None
            logger.exception("webhook_event_failed", extra={"event_id": event.id})
            failure_stored = self._store_failure(event, _describe(error))
            return Delivery(event.id, "duplicate" if failure_stored is False else "failed")

    def _delivered(self, event: WebhookEvent, result: str) -> Delivery:
        status: DeliveryStatus = "duplicate" if result == "duplicate" else event.status.value
        count(f"Webhook_{status}")
        logger.info(
            "webhook_event",
            extra={
                "event_id": event.id,
                "type": event.type,
                "result": status,
                "community_id": event.community_id,
                "stripe_account": event.account,
                "error": event.error,
            },
        )
        return Delivery(event.id, status, event.community_id)

    def _store_failure(self, event: WebhookEvent, reason: str) -> bool | None:
        """Best effort: record the event as failed so it can be listed and replayed. True
        stored, False already done, None not stored at all."""
        failed = event.concluded(Outcome.failed(reason, event.community_id), self._clock.now())
        try:
            return self._store.put(failed)
        except Exception:
            logger.exception("webhook_event_not_stored", extra={"event_id": event.id})
            return None


class _EffectKeptChanging(Exception):
    def __str__(self) -> str:
        return "the objects kept changing under every retry"


def ignore_unhandled_type(event: WebhookEvent, scope: EventScope) -> Effect:
    return Effect(Outcome.ignored(f"event type {event.type} is not handled"))


def ignore_other_mode(event: WebhookEvent, scope: EventScope) -> Effect:
    mode = "live" if event.payload.get("livemode") else "test"
    return Effect(Outcome.ignored(f"a {mode}-mode event; this stage's Stripe key is not {mode}"))


def is_transient(error: BaseException) -> bool:
    """A failure that a retry can fix: the objects kept changing under the shared code's own
    retries (a redelivery will find them settled), or AWS throttling / 5xx / timeouts."""
    if isinstance(error, _EffectKeptChanging | Conflict):
        return True
    return is_transient_aws(error)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:1000]
