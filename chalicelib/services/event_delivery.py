"""The publisher: outbox records -> the event log, EventBridge and every endpoint's queue;
the queues -> signed HTTPS deliveries with exponential backoff (docs/events.md).

Who runs it: in AWS the DynamoDB Streams handler (`jobs.event_publisher.handle_stream`) for
each new outbox record, plus a scheduled drain of endpoints whose retry is due; locally the
publisher loop of `make run` every 0.25 s (`publish_pending` + `drain_due`); under the test
clock `POST /v1/test-clock/advance` runs both synchronously before it answers.

Order: an endpoint's deliveries go out one at a time in event order (time, then the subject's
sequence), and a failing delivery holds the ones behind it until it succeeds, so each
subject's events arrive in sequence order, also after an outage. Delivery is at least once:
receivers deduplicate by `Billing-Event-Id`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from chalicelib.adapters.dynamodb.platform_events import (
    Attempt,
    Endpoint,
    OutboxRecord,
    PlatformEventStore,
    QueuedDelivery,
)
from chalicelib.adapters.webhook_sender import Answer, UnsafeUrl, signature_header
from chalicelib.domain.errors import ConcurrentChange, NotFound
from chalicelib.domain.ids import new_id
from chalicelib.domain.platform_events import PlatformEvent, matches
from chalicelib.observability import logger
from chalicelib.services.ports import Clock
from chalicelib.services.profiles import SubscriptionFinder, current_access
from chalicelib.services.receipts import when

GIVE_UP_AFTER = timedelta(days=3)
FIRST_RETRY_SECONDS = 1
MAX_RETRY_SECONDS = 3600
LEASE_SECONDS = 300
CLAIM_SECONDS = 60
# A drain pass (every due endpoint) starts no delivery after this long, so it ends within it
# plus one delivery (webhook_sender.TIMEOUT_SECONDS): inside each endpoint's lease and the
# Lambda timeout of the functions that drain (infra/cdk/stack.py, PUBLISHER_TIMEOUT_SECONDS).
DRAIN_BUDGET_SECONDS = 200.0


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failure in a row: 1 s, 2 s, 4 s ... capped at 1 h."""
    return timedelta(
        seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)
    )


def no_access(profile_id: str) -> dict[str, Any]:
    return {"profile_id": profile_id, "has_access": False, "reason": None, "subscription_ids": []}


class EventBus(Protocol):
    def put(self, events: Sequence[PlatformEvent]) -> None: ...


class AccessReader(Protocol):
    def access_body(self, community_id: str, profile_id: str) -> dict[str, Any] | None:
        """The `GET /v1/profiles/{id}/access` body now (None: no such profile)."""
        ...


class Notifier(Protocol):
    def endpoint_disabled(self, endpoint: Endpoint, failing_since: datetime) -> None: ...


Sender = Callable[[str, bytes, Mapping[str, str]], Answer]
# Runs for every outbox record published, with its events (the dunning emails): a failure
# raises, so the record stays unpublished and is published again (listeners are idempotent).
RecordListener = Callable[[Sequence[PlatformEvent]], object]
UrlCheck = Callable[[str], None]


@dataclass(frozen=True)
class DrainResult:
    delivered: int
    failed: int


class EventPublisher:
    def __init__(
        self,
        store: PlatformEventStore,
        access: AccessReader,
        bus: EventBus | None,
        send: Sender,
        check_url: UrlCheck,
        notifier: Notifier,
        clock: Clock,
        wall: Callable[[], float] = time.time,
        listeners: Sequence[RecordListener] = (),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._listeners = tuple(listeners)
        self._access = access
        self._bus = bus
        self._send = send
        self._check_url = check_url
        self._notifier = notifier
        self._clock = clock
        self._wall = wall
        self._monotonic = monotonic

    def _lease_time(self) -> datetime:
        """What claims and leases are measured in: wall time, never the test clock. They keep
        other publishers and drainers out for real seconds; a test-clock advance moves the
        clock by days, and measured in it every claim and lease the local publisher loop held
        had expired at once: the advance's publisher took the same records and endpoints and
        sent their events a second time."""
        return datetime.fromtimestamp(self._wall(), UTC)

    # --- outbox -> log, bus, queues ---------------------------------------------------------
    def publish(self, record: OutboxRecord) -> list[PlatformEvent]:
        """Idempotent but for the bus and queues (at least once)."""
        return self._publish_together([record])

    def publish_pending(self, limit: int = 100) -> int:
        """The local feed: every unpublished outbox record, oldest first; returns events.

        The records of a pass are claimed, published and marked together (one transaction of
        claims, their events in batches, each community's endpoints read once, one
        transaction of marks): per record that was six requests, most of a test-clock
        advance's publishing. If publishing them together fails, they are published one by one.
        A record another publisher holds, or one that failed, blocks the later records of its
        stream key (its subscription), so one subject's events are never queued out of order."""
        records = self._store.undelivered(limit)
        if not records:
            return 0
        taken = {
            (r.pk, r.sk) for r in self._store.claim_many(records, self._lease_time(), CLAIM_SECONDS)
        }
        blocked: set[str] = set()
        ready: list[OutboxRecord] = []
        for record in records:
            if (record.pk, record.sk) not in taken:
                blocked.add(record.pk)
            elif record.pk in blocked:
                self._store.unclaim(record)  # behind one it could not take: the next pass
            else:
                ready.append(record)
        if len(ready) > 1:
            try:
                return len(self._publish_together(ready))
            except Exception:
                # One record may be the cause: one by one, the others still go out.
                logger.exception("outbox_batch_publish_failed", extra={"records": len(ready)})
        return self._publish_each(ready)

    def _publish_each(self, claimed: Sequence[OutboxRecord]) -> int:
        published = 0
        blocked: set[str] = set()
        for record in claimed:
            if record.pk in blocked:
                self._store.unclaim(record)
                continue
            try:
                published += len(self.publish(record))
            except Exception:
                # Logged; the record stays unpublished (claim released) for the next pass,
                # and its subscription's later records wait behind it.
                logger.exception("outbox_publish_failed", extra={"record": record.sk})
                self._store.unclaim(record)
                blocked.add(record.pk)
        return published

    def _publish_together(self, records: Sequence[OutboxRecord]) -> list[PlatformEvent]:
        """Publish `records` in their order: the event log, the access events they owe, the
        bus, every enabled endpoint's queue, the listeners; then mark them published."""
        if not records:
            return []
        self._store.store_events([event for record in records for event in record.events])
        told = [(record, [*record.events, *self._access_events(record)]) for record in records]
        events = [event for _, record_events in told for event in record_events]
        if self._bus is not None and events:
            self._bus.put(events)
        now = self._clock.now()
        for community_id in dict.fromkeys(record.community_id for record in records):
            community_events = [
                event
                for record, record_events in told
                if record.community_id == community_id
                for event in record_events
            ]
            for endpoint in self._store.endpoints(community_id):
                if endpoint.status != "enabled" and not endpoint.disabled_by_failures:
                    continue
                wanted = [e for e in community_events if matches(endpoint.enabled_events, e.type)]
                self._store.enqueue(endpoint, wanted, now)
        for record in records:
            for listener in self._listeners:
                listener(record.events)
        self._store.mark_many_published(records)
        return events

    def _access_events(self, record: OutboxRecord) -> list[PlatformEvent]:
        events: list[PlatformEvent] = []
        for profile_id in record.access_profiles:
            for _ in range(5):
                try:
                    event = self._access_event(record, profile_id)
                except ConcurrentChange:
                    continue  # another publisher told this change first: read again
                if event is not None:
                    events.append(event)
                break
        return events

    def _access_event(self, record: OutboxRecord, profile_id: str) -> PlatformEvent | None:
        """The access event this record owes (the same one again when the record is published
        again after a failure: the published state remembers which record told it)."""
        community_id = record.community_id
        body = self._access.access_body(community_id, profile_id)
        if body is None:
            return None
        published = self._store.published_access(community_id, profile_id)
        before = published.body if published else no_access(profile_id)
        if body == before:
            if published is not None and published.told_by == record.sk:
                return published.event
            return None
        previous = {key: value for key, value in before.items() if body.get(key) != value}
        event = PlatformEvent(
            id=new_id("evt"),
            type="access.granted" if body["has_access"] else "access.revoked",
            created_at=self._clock.now(),
            community_id=community_id,
            subject_id=profile_id,
            sequence=(published.sequence if published else 0) + 1,
            data=body,
            previous_attributes=previous,
        )
        self._store.publish_access(
            event, body, published.sequence if published else 0, told_by=record.sk
        )
        return event

    # --- queues -> endpoints ------------------------------------------------------------------
    def drain_due(self) -> DrainResult:
        """Drain the due endpoints within one DRAIN_BUDGET_SECONDS for them all: the endpoints
        it does not reach stay due for the next pass (one endpoint's budget each let a pass
        over several slow receivers outlast its Lambda)."""
        started = self._monotonic()
        delivered = failed = 0
        for community_id, endpoint_id in self._store.due_endpoints(self._clock.now()):
            if self._monotonic() - started > DRAIN_BUDGET_SECONDS:
                break
            result = self.drain(community_id, endpoint_id, started)
            delivered += result.delivered
            failed += result.failed
        return DrainResult(delivered, failed)

    def drain(
        self, community_id: str, endpoint_id: str, started: float | None = None
    ) -> DrainResult:
        """Deliver the endpoint's queue in order until it is empty, a delivery fails, or the
        budget counted from `started` (this call, by default) is spent."""
        now = self._clock.now()
        endpoint = self._store.take_lease(
            community_id, endpoint_id, self._lease_time(), LEASE_SECONDS
        )
        if endpoint is None:
            return DrainResult(0, 0)  # another drainer holds it; the due marker stays
        started = self._monotonic() if started is None else started
        delivered = 0
        while True:
            if delivered:  # a success ends a run of failures: the 3 days count from the next
                endpoint = replace(endpoint, failing_since=None)
            if endpoint.status != "enabled":
                self._store.release(
                    endpoint, next_drain_at=None, failing_since=endpoint.failing_since
                )
                return DrainResult(delivered, 0)
            if endpoint.next_drain_at is not None and endpoint.next_drain_at > now:
                self._store.release(
                    endpoint,
                    next_drain_at=endpoint.next_drain_at,
                    failing_since=endpoint.failing_since,
                )
                return DrainResult(delivered, 0)
            batch = self._store.queued(endpoint)
            if not batch:
                if self._store.release(endpoint, next_drain_at=None, failing_since=None):
                    return DrainResult(delivered, 0)
                endpoint = self._store.get_endpoint(community_id, endpoint_id)  # queued since
                continue
            for delivery in batch:
                if self._monotonic() - started > DRAIN_BUDGET_SECONDS:
                    self._store.release(endpoint, next_drain_at=now, failing_since=None)
                    return DrainResult(delivered, 0)
                answer, attempt = self._deliver(
                    endpoint, delivery.body, delivery.event_id, delivery.attempts + 1
                )
                if answer.succeeded:
                    self._store.delivered(endpoint, delivery, attempt)
                    delivered += 1
                    endpoint = replace(endpoint, failing_since=None)
                    continue
                self._store.record_attempt(endpoint, attempt)
                self._store.failed(endpoint, delivery)
                self._after_failure(endpoint, delivery, self._clock.now())
                return DrainResult(delivered, 1)
            endpoint = self._store.get_endpoint(community_id, endpoint_id)  # still leased

    def _after_failure(self, endpoint: Endpoint, delivery: QueuedDelivery, now: datetime) -> None:
        failing_since = endpoint.failing_since or now
        if now - failing_since >= GIVE_UP_AFTER:
            self._store.release(
                endpoint, next_drain_at=None, failing_since=failing_since, disable=True
            )
            logger.warning(
                "webhook_endpoint_disabled",
                extra={"community_id": endpoint.community_id, "endpoint_id": endpoint.id},
            )
            self._notifier.endpoint_disabled(endpoint, failing_since)
            return
        self._store.release(
            endpoint,
            next_drain_at=now + backoff(delivery.attempts + 1),
            failing_since=failing_since,
        )

    def _deliver(
        self,
        endpoint: Endpoint,
        body: str,
        event_id: str,
        attempt: int,
        *,
        redelivery: bool = False,
    ) -> tuple[Answer, Attempt]:
        """One signed POST (after the SSRF guard); the attempt is for the caller to record."""
        raw = body.encode()
        attempted_at = self._clock.now()
        try:
            self._check_url(endpoint.url)
        except UnsafeUrl as refused:
            answer = Answer(None, "", 0, f"refused: {refused}")
        else:
            headers = {
                "Billing-Signature": signature_header(endpoint.secret, raw, int(self._wall())),
                "Billing-Event-Id": event_id,
            }
            answer = self._send(endpoint.url, raw, headers)
        return answer, Attempt(
            event_id=event_id,
            event_type=str(json.loads(body).get("type", "")),
            attempt=attempt,
            status="succeeded" if answer.succeeded else "failed",
            attempted_at=attempted_at,
            duration_ms=answer.duration_ms,
            response_status=answer.status,
            response_body=answer.body,
            error=answer.error,
            redelivery=redelivery,
        )

    # --- redelivery -----------------------------------------------------------------------------
    def redeliver(
        self, community_id: str, event_id: str, endpoint_id: str | None = None
    ) -> list[tuple[Endpoint, Answer]]:
        """Send one event again now to every enabled endpoint that takes it (or to one)."""
        event = self._store.find_event(community_id, event_id)
        if endpoint_id is not None:
            targets = [self._store.get_endpoint(community_id, endpoint_id)]
        else:
            targets = [
                e
                for e in self._store.endpoints(community_id)
                if e.status == "enabled" and matches(e.enabled_events, event.type)
            ]
        body = json.dumps(event.body())
        sent: list[tuple[Endpoint, Answer]] = []
        for endpoint in targets:
            answer, attempt = self._deliver(endpoint, body, event.id, 1, redelivery=True)
            self._store.record_attempt(endpoint, attempt)
            sent.append((endpoint, answer))
        return sent


__all__ = ["EventPublisher", "NotFound", "backoff"]


class ProfileAccess:
    """The access body of `GET /v1/profiles/{id}/access`, as that route reads it."""

    def __init__(self, profiles: Any, subscriptions: SubscriptionFinder, clock: Clock) -> None:
        self._profiles = profiles
        self._subscriptions = subscriptions
        self._clock = clock

    def access_body(self, community_id: str, profile_id: str) -> dict[str, Any] | None:
        try:
            profile = self._profiles.get(community_id, profile_id)
        except NotFound:
            return None
        access = current_access(profile, self._subscriptions, self._clock.now())
        return {
            "profile_id": access.profile_id,
            "has_access": access.has_access,
            "reason": access.reason,
            "subscription_ids": list(access.subscription_ids),
        }


class Mailer(Protocol):
    def send(self, email: Any) -> str: ...


class MailNotifier:
    """Tells the community an endpoint was disabled: to the endpoint's `notification_email`,
    else to the platform's own address (the email sender)."""

    def __init__(self, mailer: Mailer, fallback_to: str) -> None:
        self._mailer = mailer
        self._fallback = fallback_to

    def endpoint_disabled(self, endpoint: Endpoint, failing_since: datetime) -> None:
        from chalicelib.adapters.email import Email

        body = (
            f"Every delivery to your webhook endpoint {endpoint.id} ({endpoint.url}) has failed "
            f"since {when(failing_since)}, so it was disabled. Events keep being recorded "
            "(GET /v1/events, 30 days). Fix the receiver, then PATCH the endpoint with "
            '{"status": "enabled"}: the deliveries it missed go out in order.'
        )
        try:
            self._mailer.send(
                Email(
                    to=endpoint.notification_email or self._fallback,
                    subject=f"Webhook endpoint {endpoint.id} disabled",
                    body=body,
                )
            )
        except Exception:
            logger.exception("endpoint_disabled_email_failed", extra={"endpoint_id": endpoint.id})
