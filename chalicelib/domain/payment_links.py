"""Pay-now links: the rules of a link's life (issue 15). Pure: time is a parameter.

A link pays ONE outstanding amount of ONE subscription: the failed payment the subscription was
in when the link was issued (`outstanding_since` = the subscription's `failed_at` then). It
expires at the earlier of the subscription's `cancel_at` (grace end) and 7 days after issue,
and a newer link of the same subscription replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from chalicelib.domain.errors import Conflict
from chalicelib.domain.periods import ensure_utc
from chalicelib.domain.subscriptions import Subscription

LINK_LIFETIME = timedelta(days=7)
# The one thing a link can do; a stored link naming anything else is refused.
PAY_OUTSTANDING = "pay_outstanding"

LinkState = Literal["payable", "paid", "cancelled", "expired"]


@dataclass(frozen=True)
class PaymentLink:
    token_hash: str
    community_id: str
    subscription_id: str
    purpose: str
    outstanding_since: datetime
    issued_at: datetime
    expires_at: datetime


def ensure_link_can_be_issued(sub: Subscription, now: datetime) -> None:
    if sub.status != "failed_payment" or sub.failed_at is None:
        raise Conflict(
            f"Payment links are issued for failed_payment subscriptions; this one is {sub.status}."
        )
    ends = sub.cancel_at or sub.grace_ends_at
    if ends is not None and ends <= now:
        # Grace is over; the cancellation runs within minutes. A link would be dead on arrival.
        raise Conflict(
            f"The grace period ended at {ends.isoformat()}; the subscription is being cancelled."
        )


def link_expiry(sub: Subscription, now: datetime) -> datetime:
    """min(cancel_at, now + 7 days); a failed_payment subscription's cancel_at is its grace end."""
    ensure_utc(now)
    ends = sub.cancel_at or sub.grace_ends_at
    week = now + LINK_LIFETIME
    return week if ends is None else min(ends, week)


def new_link(token_hash: str, sub: Subscription, now: datetime) -> PaymentLink:
    ensure_link_can_be_issued(sub, now)
    assert sub.failed_at is not None
    now = ensure_utc(now).replace(microsecond=0)  # stored and shown in whole seconds
    return PaymentLink(
        token_hash=token_hash,
        community_id=sub.community_id,
        subscription_id=sub.id,
        purpose=PAY_OUTSTANDING,
        outstanding_since=_whole_seconds(sub.failed_at),
        issued_at=now,
        expires_at=link_expiry(sub, now),
    )


def link_state(link: PaymentLink, sub: Subscription, *, current: bool, now: datetime) -> LinkState:
    """What the link's page shows. The subscription's news comes first: a link opened after its
    amount was paid says "paid" and one opened after the cancellation says "cancelled", expired
    or not. Otherwise a link past its expiry, or replaced by a newer one, is "expired"."""
    if sub.status == "cancelled":
        return "cancelled"
    failure = sub.failed_at
    if sub.status != "failed_payment" or failure is None:
        return "paid"
    if _whole_seconds(failure) != _whole_seconds(link.outstanding_since):
        return "paid"  # the outstanding amount this link was for has been paid
    if not current or now >= link.expires_at:
        return "expired"
    return "payable"


def _whole_seconds(when: datetime) -> datetime:
    """Links are stored in whole seconds; a subscription's times may carry microseconds."""
    return when.replace(microsecond=0)
