"""Pay-now links (issue 15): issuing them and reading one back from its token.

A token is 32 random bytes (URL-safe text); only its SHA-256 is stored, so a copy of the table
holds no usable link. The rules of a link's life are the domain's (domain/payment_links.py).
The emails of the dunning flow receive their links from `PaymentLinks.issue` alone.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chalicelib.domain.errors import NotFound, RateLimited, Unavailable
from chalicelib.domain.payment_links import (
    PAY_OUTSTANDING,
    LinkState,
    PaymentLink,
    link_state,
    new_link,
)
from chalicelib.domain.subscriptions import Subscription

# Requests one token may make in one minute (page, card setup, pay, confirm, resend): a
# person paying makes a handful; a script guessing or hammering is stopped.
REQUESTS_PER_TOKEN_PER_MINUTE = 30


@dataclass(frozen=True)
class IssuedPaymentLink:
    url: str  # absolute URL of GET /pay/{token}
    expires_at: datetime


@dataclass(frozen=True)
class OpenedLink:
    """A link read back from its token, with the subscription it pays and what it may do."""

    link: PaymentLink
    subscription: Subscription
    state: LinkState


class LinkStore(Protocol):
    def replace_current(self, link: PaymentLink) -> None: ...
    def find(self, token_hash: str) -> tuple[PaymentLink, bool] | None: ...
    def claim_resend(self, token_hash: str, now: datetime) -> bool: ...
    def release_resend(self, token_hash: str, claimed_at: datetime) -> None: ...
    def count_request(self, token_hash: str, now: datetime) -> int: ...


class SubscriptionFinder(Protocol):
    def find(self, community_id: str, subscription_id: str) -> Subscription | None: ...


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class PaymentLinks:
    def __init__(
        self,
        store: LinkStore,
        subscriptions: SubscriptionFinder,
        public_url: Callable[[], str],
        make_token: Callable[[], str] = new_token,
    ) -> None:
        """`public_url`: the base URL the pay page is served under (BILLING_PUBLIC_URL)."""
        self._store = store
        self._subscriptions = subscriptions
        self._public_url = public_url
        self._make_token = make_token

    def issue(self, community_id: str, subscription_id: str, now: datetime) -> IssuedPaymentLink:
        """A new single-purpose link for a failed_payment subscription; invalidates older
        links of that subscription. Raises the domain's conflict error (409) otherwise."""
        sub = self._subscriptions.find(community_id, subscription_id)
        if sub is None:
            raise NotFound(f"Subscription {subscription_id} not found.")
        base = self._public_url().rstrip("/")
        if not base:
            raise Unavailable("Payment links are not set up on this stage (BILLING_PUBLIC_URL).")
        token = self._make_token()
        link = new_link(hash_token(token), sub, now)
        self._store.replace_current(link)
        return IssuedPaymentLink(f"{base}/pay/{token}", link.expires_at)

    def open(self, token: str, now: datetime) -> OpenedLink:
        """The link behind `token` and its state now; NotFound for anything that is not one
        of our pay links (unknown, malformed, another purpose, subscription gone)."""
        found = self._store.find(hash_token(token)) if _plausible(token) else None
        if found is None:
            raise NotFound("This payment link is not valid.")
        link, current = found
        if link.purpose != PAY_OUTSTANDING:
            raise NotFound("This payment link is not valid.")
        sub = self._subscriptions.find(link.community_id, link.subscription_id)
        if sub is None:
            raise NotFound("This payment link is not valid.")
        return OpenedLink(link, sub, link_state(link, sub, current=current, now=now))

    def count_request(self, token: str, now: datetime) -> None:
        """Count one request made with `token`; RateLimited (429) past the minute's allowance."""
        if not _plausible(token):
            return  # answered 404 without touching the table
        if self._store.count_request(hash_token(token), now) > REQUESTS_PER_TOKEN_PER_MINUTE:
            # The allowance is per calendar minute: wait for the next one.
            raise RateLimited(
                "Too many requests with this payment link; wait a minute.",
                retry_after_seconds=60 - now.second,
            )

    def claim_resend(self, token: str, now: datetime) -> bool:
        return self._store.claim_resend(hash_token(token), now)

    def release_resend(self, token: str, claimed_at: datetime) -> None:
        """Undo `claim_resend(token, claimed_at)`: no new link reached the owner."""
        self._store.release_resend(hash_token(token), claimed_at)


def _plausible(token: str) -> bool:
    """The shape `new_token` makes (43 URL-safe characters); anything else is not looked up."""
    return 20 <= len(token) <= 100 and all(c.isalnum() or c in "-_" for c in token)
