"""Structured JSON logs and CloudWatch EMF metrics (Powertools), with correlation ids.

Never log card data, secrets or personal data: callers log ids and outcomes, not payloads
(docs/rules/logs.md); `redact` masks known-sensitive keys of a structure that must be logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from chalicelib.domain.events import AuditEvent

SERVICE_NAME = "membership-billing"
METRICS_NAMESPACE = "MembershipBilling"

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)

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


# What a `state_change` line copies from an audit event's details: ids, amounts and codes.
# Free text (a refund's `reason`, typed by the operator) and anything added later stay in the
# audit trail only (docs/rules/logs.md).
STATE_CHANGE_DETAILS = (
    "payment_id",
    "refund_id",
    "amount",
    "payment_status",
    "kind",
    "retries_stopped",
    "plan_id",
    "profile_id",
)


def log_state_change(
    community_id: str, subscription_id: str, version: int, event: AuditEvent
) -> None:
    """One line per committed audit event: what changed, with the ids to find it."""
    logger.info(
        "state_change",
        extra={
            "community_id": community_id,
            "subscription_id": subscription_id,
            "version": version,
            "event_type": event.type,
            "from_status": event.from_status,
            "to_status": event.to_status,
            "actor": event.actor,
            **{key: event.details[key] for key in STATE_CHANGE_DETAILS if key in event.details},
        },
    )


def log_config_change(action: str, community_id: str, **ids: str | list[str] | int | None) -> None:
    """A credential or a setting that decides where money goes changed: issued or revoked keys,
    webhook endpoints (never their secret or URL), a community's Stripe account or fee."""
    logger.info("config_change", extra={"action": action, "community_id": community_id, **ids})


@contextmanager
def correlation(**ids: str | None) -> Iterator[None]:
    """Attach correlation ids to every log line written inside the block (this thread's: the
    worker runs a batch's messages on several threads). Blocks nest."""
    present = {key: value for key, value in ids.items() if value}
    outer = dict(logger.thread_safe_get_current_keys())
    logger.thread_safe_append_keys(**present)
    try:
        yield
    finally:
        # A block inside another that names the same key gives the outer value back.
        logger.thread_safe_remove_keys([key for key in present if key not in outer])
        restored = {key: outer[key] for key in present if key in outer}
        if restored:
            logger.thread_safe_append_keys(**restored)


_pending = {"metrics": False}


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Add a count metric. `dimensions` go on the EMF line as metadata, not as CloudWatch
    dimensions: a count that must be told apart (an outcome) is its own metric name."""
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
