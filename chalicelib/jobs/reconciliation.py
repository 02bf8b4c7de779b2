"""Webhook reconciliation: catch every event Stripe sent that never reached us.

Scheduled (app.py) and run by the local runner as a sweep (`reconciliation_sweep`). For the
platform account and every community's connected account it pages Stripe's Events API (`GET
/v1/events`, filtered by `created >= cursor - overlap`; a community's previous connected
accounts too). A run that runs out of time stores the community it got to, and the next run
goes on from there (after the platform account, read every run); once the community list's end
is reached the next run starts from the top. For each account it looks up which event ids are
stored (one BatchGetItem per page) and feeds each missing event of a handled type through the
same pipeline as a webhook delivery. The cursor is Stripe's own `created` time of the newest
event seen (never our clock), stored per account; the overlap re-reads a few minutes because an
event can appear in the list shortly after its `created` time. Without a cursor (first run) it
reads all that Stripe still keeps (30 days). The order Stripe pages in does not matter: every
event of the window is read and de-duplicated by id.

An event fed here that fails transiently (throttling, Stripe or DynamoDB down) is stored as a
transient failure, and Stripe will not deliver it: it never did. So a later run feeds it again
(`settled_ids` leaves transient failures out), the account's cursor stays at or before it, and
the run goes on with the other events and accounts. An account whose events cannot be listed
(it disconnected the platform: Stripe answers 403; or Stripe failed) keeps its cursor and the
run goes on with the other accounts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.bootstrap import Container, container
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import AccountDisconnected, InvalidRequest, Unavailable
from chalicelib.domain.webhook_events import WebhookEvent
from chalicelib.observability import count, flush_metrics, logger

OVERLAP_SECONDS = 600
EVERY_MINUTES = 15
LAMBDA_SAFETY_SECONDS = 20.0
# Each run reads the platform account, then the connected accounts from where the last run
# stopped (a stored community-list cursor), so successive runs read every account in turn,
# however many there are. Each account costs at least one Events API page (ACCOUNT_SECONDS);
# the deployed function's timeout (infra/cdk/stack.py) gives ACCOUNTS_PER_RUN accounts that time
# after the safety margin, and ends before the next run starts.
ACCOUNT_SECONDS = 0.5
ACCOUNTS_PER_RUN = 1_000
TIMEOUT_SECONDS = 600
COMMUNITY_PAGE = 100


@dataclass
class ReconciliationResult:
    accounts: int = 0
    events_listed: int = 0
    events_fed: int = 0
    failed: int = 0
    unreadable: int = 0  # accounts whose events could not be listed this run
    complete: bool = True


def reconcile(
    box: Container,
    deadline: float | None = None,
    page_size: int = 100,
    max_accounts: int | None = None,
) -> ReconciliationResult:
    """Read the platform account, then the connected accounts from where the last run stopped,
    until `deadline` (time.monotonic()) or `max_accounts` accounts read in all."""
    from chalicelib.adapters.stripe.client import stripe_client
    from chalicelib.adapters.stripe.events import StripeEvents

    client = stripe_client(box.settings, box.secrets.get().stripe_secret_key)
    reader = _AccountReader(box, StripeEvents(client, page_size))
    result = reader.result

    def out_of_time() -> bool:
        over = (deadline is not None and time.monotonic() > deadline) or (
            max_accounts is not None and result.accounts >= max_accounts
        )
        result.complete = result.complete and not over
        return over

    if out_of_time():
        return result
    reader.read(None)
    store = box.webhook_events
    resume = store.reconciliation_resume()
    seen: set[str] = set()
    for community in _communities(box, resume):
        for account in community.stripe_accounts():
            if account in seen:
                continue
            if out_of_time():
                return result
            seen.add(account)
            reader.read(account)
        # Saved as each community is done, so a run its Lambda stops still leaves its place.
        store.save_reconciliation_resume(box.communities.cursor_after(community))
    store.save_reconciliation_resume(None)  # the list's end: the next run starts at the top
    return result


class _AccountReader:
    """Reads one account's events since its cursor, feeds what we never stored, moves its
    cursor."""

    def __init__(self, box: Container, events: Any) -> None:
        self.box = box
        self.events = events
        self.result = ReconciliationResult()

    def read(self, account: str | None) -> None:
        box, store, result = self.box, self.box.webhook_events, self.result
        result.accounts += 1
        cursor = store.reconciliation_cursor(account)
        since = max(cursor - OVERLAP_SECONDS, 0) if cursor is not None else 0
        newest = cursor or 0
        retry_from: int | None = None  # the oldest event to feed again next time
        try:
            for page in self.events.pages(since, account):
                newest = max(newest, *(int(e.get("created") or 0) for e in page))
                for created in _feed(box, box.webhooks, store, page, result):
                    retry_from = created if retry_from is None else min(retry_from, created)
        except (AccountDisconnected, Unavailable) as error:
            # This account cannot be read now (it disconnected the platform, or Stripe failed):
            # its cursor stays (pages come newest first, so older events may be unread) and
            # the run goes on with the other accounts.
            result.unreadable += 1
            result.complete = result.complete and isinstance(error, AccountDisconnected)
            logger.warning(
                "webhook_reconciliation_account_unreadable",
                extra={"account": account, "error": error.message},
            )
            return
        if retry_from is not None:
            newest = min(newest, retry_from)
        if newest:
            store.save_reconciliation_cursor(account, newest)


def _feed(
    box: Container,
    service: Any,
    store: Any,
    events: list[dict[str, Any]],
    result: ReconciliationResult,
) -> list[int]:
    """Feed the page's events that are not settled; the `created` times of those that failed
    transiently (to feed again next time)."""
    if not events:
        return []
    result.events_listed += len(events)
    settled = store.settled_ids(str(e["id"]) for e in events)
    again: list[int] = []
    for payload in events:
        if payload["id"] in settled or not service.handles(str(payload.get("type"))):
            continue
        result.events_fed += 1
        try:
            delivery = service.process(WebhookEvent.received(payload, box.clock.now()))
        except Unavailable:
            result.failed += 1
            again.append(int(payload.get("created") or 0))
            logger.warning("webhook_event_recovery_deferred", extra={"event_id": payload["id"]})
            continue
        result.failed += delivery.status == "failed"
        logger.warning(
            "webhook_event_recovered",
            extra={
                "event_id": payload["id"],
                "type": payload.get("type"),
                "result": delivery.status,
            },
        )
    return again


def _communities(box: Container, resume: str | None) -> Iterator[Community]:
    """Every community from `resume` (a `list` cursor; None: the newest) to the list's end."""
    cursor = resume
    while True:
        try:
            page = box.communities.list(COMMUNITY_PAGE, cursor)
        except InvalidRequest:
            # A cursor signed with a key since rotated: start from the top.
            logger.warning("webhook_reconciliation_resume_unreadable")
            page = box.communities.list(COMMUNITY_PAGE, None)
        yield from page.communities
        if not page.has_more:
            return
        cursor = page.next_cursor


def reconciliation_sweep(box: Container) -> int:
    return reconcile(box).events_fed


def scheduled_reconciliation(context: Any = None) -> ReconciliationResult:
    """Entry point of the scheduled Lambda (app.py)."""
    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000 - LAMBDA_SAFETY_SECONDS
        deadline = time.monotonic() + max(remaining, 1.0)
    result = reconcile(container(), deadline)
    logger.info("webhook_reconciliation_done", extra=result.__dict__)
    count("WebhookEventsRecovered", result.events_fed)
    flush_metrics()
    return result
