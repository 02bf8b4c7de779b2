"""The publisher of events to the platform, as each environment runs it (docs/events.md).

- AWS: `handle_stream(records)`: the DynamoDB Streams handler (app.py `publisher`). Each
  INSERT of an outbox record is published (event log, EventBridge, endpoint queues) and the
  endpoints drained; a failure raises, so Lambda retries the batch (then its DLQ). The
  scheduled `drain_due_deliveries` retries endpoints whose backoff is over.
- Local stack: `run_local(container)` every 0.25 s in its own process (infra/local/publisher.py):
  the outbox records not yet published, from the sparse index (moto has no DescribeStream).
- Test clock: `publish_now(container)` at the end of every advance (jobs/test_clock.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.bootstrap import Container, container
from chalicelib.observability import logger

OUTBOX_TYPE = "outbox_record"
STREAM_BATCH_SIZE = 100
# publish_now: records per pass, and a bound on passes (a stuck record must not spin forever).
PUBLISH_BATCH = 100
MAX_PASSES = 1_000
# app.py needs a stream ARN at import; the CDK stack replaces it with the table's stream.
STREAM_PLACEHOLDER = (
    "arn:aws:dynamodb:us-east-1:000000000000:table/membership-billing/stream/bound-by-infra-cdk"
)
# Lambda's event filter: only outbox-record INSERTs invoke the publisher.
STREAM_FILTER = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": [OUTBOX_TYPE]}}}}


@dataclass(frozen=True)
class PublishResult:
    published: int
    delivered: int
    failed: int


def publish_now(box: Container, batch: int = PUBLISH_BATCH) -> PublishResult:
    """Publish every pending outbox record (passes of `batch` records until one publishes
    nothing: a record another publisher holds stays for it) and make every due delivery,
    synchronously."""
    publisher = box.event_publisher
    published = 0
    for _ in range(MAX_PASSES):
        this_pass = publisher.publish_pending(limit=batch)
        published += this_pass
        if this_pass == 0:
            break
    drained = publisher.drain_due()
    return PublishResult(published, drained.delivered, drained.failed)


def run_local(box: Container) -> PublishResult:
    return publish_now(box)


def outbox_images(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The new images of outbox-record INSERTs in a Streams batch (anything else is skipped)."""
    images: list[dict[str, Any]] = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        if image.get("type", {}).get("S") == OUTBOX_TYPE:
            images.append(image)
    return images


def handle_stream(records: Iterable[Mapping[str, Any]], box: Container | None = None) -> int:
    """Publish the outbox records of one Streams batch, in stream order; returns events."""
    from chalicelib.adapters.dynamodb.platform_events import record_from_item  # boto3: lazily

    box = box or container()
    publisher = box.event_publisher
    published = 0
    for image in outbox_images(records):
        published += len(publisher.publish(record_from_item(image)))
    drained = publisher.drain_due()
    logger.info(
        "events_published",
        extra={"published": published, "delivered": drained.delivered, "failed": drained.failed},
    )
    return published


def drain_due_deliveries(box: Container | None = None) -> int:
    """The scheduled retry pass (AWS): endpoints whose backoff is over."""
    return (box or container()).event_publisher.drain_due().delivered
