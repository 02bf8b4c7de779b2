"""Structured JSON logs and CloudWatch EMF metrics (Powertools), with correlation ids.

Never log card data or secrets: `redact` masks known-sensitive keys in anything logged as
structured data, and callers log ids, not payloads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE_NAME = "membership-billing"
METRICS_NAMESPACE = "MembershipBilling"

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)

CORRELATION_KEYS = ("request_id", "community_id", "subscription_id", "stripe_event_id")
_SENSITIVE_KEY = re.compile(
    r"(authorization|secret|password|api_key|card|number|cvc|cvv|client_secret|token)", re.I
)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """Return a copy of `value` with sensitive keys masked (recursively)."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _SENSITIVE_KEY.search(str(key)) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


@contextmanager
def correlation(**ids: str | None) -> Iterator[None]:
    """Attach correlation ids to every log line written inside the block (this thread's: the
    worker runs a batch's messages on several threads)."""
    present = {key: value for key, value in ids.items() if value}
    logger.thread_safe_append_keys(**present)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(present))


_pending = {"metrics": False}


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Add a count metric; dimensions are attached as metadata (kept low-cardinality)."""
    _pending["metrics"] = True
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for key, item in dimensions.items():
        metrics.add_metadata(key=key, value=item)


def flush_metrics() -> None:
    """Write buffered metrics as one EMF log line (no-op when nothing was recorded)."""
    if not _pending["metrics"]:
        return
    _pending["metrics"] = False
    try:
        metrics.flush_metrics(raise_on_empty_metrics=False)
    except Exception:  # metrics must never break a request
        logger.exception("metrics_flush_failed")
