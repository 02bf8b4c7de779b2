"""Dunning: when the owner of a failed_payment subscription hears what (services/dunning.py).

Pure; times are parameters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# The last reminder goes out this long before grace ends (then the subscription is cancelled).
LAST_REMINDER_BEFORE = timedelta(hours=48)


def last_reminder_at(failed_at: datetime, grace_ends_at: datetime) -> datetime | None:
    """When the last reminder is due: 48 h before grace ends, or None when that moment is not
    after the failure (a grace of 2 days or less: the payment-failed email already says when
    the subscription ends)."""
    moment = grace_ends_at - LAST_REMINDER_BEFORE
    return moment if moment > failed_at else None


def next_retry_shown(
    next_retry_at: datetime | None, grace_ends_at: datetime | None
) -> datetime | None:
    """The retry the owner is told of: only one that runs before grace ends (the scheduler
    skips a retry at or after the grace end: the cancellation wins)."""
    if next_retry_at is None or grace_ends_at is None or next_retry_at >= grace_ends_at:
        return None
    return next_retry_at


@dataclass(frozen=True)
class Reminder:
    """The last reminder scheduled for one grace period of a subscription (the amount and
    currency of the payment that failed, for the email)."""

    subscription_id: str
    grace_ends_at: datetime
    due_at: datetime
    amount: int
    currency: str
