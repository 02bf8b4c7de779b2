"""The DynamoDB unit of work: registered domain changes -> ONE TransactWriteItems.

Repositories hand out domain objects and take them back; only this package knows items,
keys and conditions. Reads go straight to the table (consistent); writes are staged and
sent together by `commit()`:

- a subscription save is a whole-item Put conditional on the version it was read at. Its
  profile links (one item per member: up to 1,000, and a transaction takes at most 100) follow
  ONE rule, `LinkPlan`: when the link writes the change needs fit the transaction with a
  margin (`INLINE_LINKS_MAX_ITEMS`, `INLINE_LINKS_MAX_BYTES`), they are in it (Puts/Deletes,
  idempotent) with the link state entry that marks them written; else the transaction holds
  only that one constant-size entry and `commit()` writes the links right after
  (profile_links.LinkWriter: versioned, idempotent; a crash in between leaves the "links"
  repair due). Links that a writer left behind are never patched inside a transaction: the
  state entry's condition refuses, and the same commit goes again through the writer;
- a payment save is conditional on its revision; a charge-key claim on nobody holding the key;
- the webhook-event record, when registered, is the FIRST entry, conditional on the event not
  being done: its failure alone means "duplicate".

Failures map to the service layer's words (transactions.py): a failed condition or a
transaction conflict is `ConcurrentChange`, throttling `Unavailable`, the event record's
condition `DuplicateEvent`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.dynamodb import audit_events
from chalicelib.adapters.dynamodb.card_snapshots import (
    CardSnapshots,
    card_detached_entry,
    card_update_entry,
)
from chalicelib.adapters.dynamodb.communities import deauthorized_entry
from chalicelib.adapters.dynamodb.payments import PaymentRepository, payment_with_subscription_of
from chalicelib.adapters.dynamodb.platform_events import outbox_entry
from chalicelib.adapters.dynamodb.profile_links import (
    LinkChange,
    LinkWriter,
    link_writes,
    links_written_entry,
)
from chalicelib.adapters.dynamodb.profiles import credit_change_entry
from chalicelib.adapters.dynamodb.subscriptions import (
    SubscriptionRepository,
    charge_key_claim_entry,
    charge_key_resolve_entry,
)
from chalicelib.adapters.dynamodb.transactions import ConditionsFailed, commit_transaction
from chalicelib.domain.events import AuditEvent
from chalicelib.domain.payments import Payment, Refund
from chalicelib.domain.platform_events import AccessCheck, PlatformEvent
from chalicelib.domain.subscriptions import Subscription
from chalicelib.observability import log_state_change

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.webhook_events import WebhookEventRepository
    from chalicelib.domain.payment_reports import PaymentReport
    from chalicelib.domain.webhook_events import WebhookEvent

Entry = dict[str, Any]

# A change's link writes ride in its transaction when the whole transaction then holds at most
# this many items and bytes. DynamoDB's limits are 100 items and 4 MB; the count is exact when
# it is checked (the last step before sending), and the margin keeps an entry added later to
# this code from tipping a transaction over the hard limit. A link item is under 1 KB, so the
# byte bound matters only beside a very large subscription or payment item.
INLINE_LINKS_MAX_ITEMS = 90
INLINE_LINKS_MAX_BYTES = 1_000_000


class _Staged:
    """The entries of one commit, in the order they were registered."""

    def __init__(self) -> None:
        self.first: Entry | None = None
        self.entries: list[Entry] = []
        # After a refused commit: the items its refused entries returned, by id() of the entry.
        self.refused_items: dict[int, Entry] = {}

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)

    def all(self) -> list[Entry]:
        return ([self.first] if self.first else []) + self.entries


class UowSubscriptions:
    def __init__(self, repo: SubscriptionRepository, staged: _Staged) -> None:
        self._repo = repo
        self._staged = staged
        self._seen: dict[tuple[str, str], Subscription] = {}
        self.link_changes: list[LinkChange] = []

    def _track(self, sub: Subscription | None) -> Subscription | None:
        if sub is not None:
            self._seen[(sub.community_id, sub.id)] = sub
        return sub

    def find(self, community_id: str, subscription_id: str) -> Subscription | None:
        return self._track(self._repo.find(community_id, subscription_id))

    def get(self, community_id: str, subscription_id: str) -> Subscription:
        found = self._repo.get(community_id, subscription_id)
        self._track(found)
        return found

    def adopt(self, sub: Subscription) -> Subscription:
        self._track(sub)
        return sub

    def add(self, sub: Subscription) -> None:
        self._staged.add(self._repo.create_entry(sub))
        self._follow(LinkChange(sub.community_id, sub.id, None, sub, 1))

    def save(self, sub: Subscription, expected_version: int) -> None:
        before = self._seen.get((sub.community_id, sub.id))
        if before is None or before.version != expected_version:
            raise ValueError(f"subscription {sub.id} was not read at version {expected_version}")
        self._staged.add(self._repo.save_entry(sub, expected_version))
        after = replace(sub, version=expected_version + 1)
        self._follow(LinkChange(sub.community_id, sub.id, before, after, after.version))

    def delete(self, sub: Subscription) -> None:
        before = self._seen.get((sub.community_id, sub.id), sub)
        self._staged.add(self._repo.delete_entry(sub))
        self._follow(LinkChange(sub.community_id, sub.id, before, None, sub.version + 1))

    def _follow(self, change: LinkChange) -> None:
        """Note a change of the links; commit() decides where they are written (LinkPlan)."""
        if change.changed():
            self.link_changes.append(change)


class UowPayments:
    def __init__(
        self, repo: PaymentRepository, subscriptions: UowSubscriptions, staged: _Staged
    ) -> None:
        self._repo = repo
        self._subscriptions = subscriptions
        self._staged = staged
        self._settled_checks: tuple[builtins.list[Entry], str | None] = ([], None)

    def find(self, community_id: str, payment_id: str) -> Payment | None:
        return self._repo.find_payment(community_id, payment_id)

    def get(self, community_id: str, payment_id: str) -> Payment:
        return self._repo.get_payment(community_id, payment_id)

    def find_by_payment_intent(
        self, payment_intent_id: str, community_id: str | None = None
    ) -> Payment | None:
        return self._repo.find_payment_by_intent(payment_intent_id, community_id)

    def with_subscription(
        self, community_id: str, payment_id: str, subscription_id: str
    ) -> tuple[Payment, Subscription] | None:
        found = self._repo.payment_with_subscription(community_id, payment_id, subscription_id)
        if found is not None:
            self._subscriptions.adopt(found[1])
        return found

    def expect_settled(self, report: PaymentReport) -> None:
        checks = self._repo.settled_checks(report)
        for entry in checks:
            self._staged.add(entry)
        self._settled_checks = (checks, report.subscription_id)

    def seen_by_refused_checks(self) -> tuple[Payment, Subscription] | None:
        checks, subscription_id = self._settled_checks
        items = [self._staged.refused_items.get(id(entry)) for entry in checks]
        if subscription_id is None:  # one check, on the payment alone
            return None
        found = payment_with_subscription_of(items[0], items[1], subscription_id)
        if found is not None:
            self._subscriptions.adopt(found[1])
        return found

    def add(self, payment: Payment) -> None:
        self._staged.add(self._repo.create_entry(payment))

    def save(self, payment: Payment) -> None:
        self._staged.add(self._repo.save_entry(payment))

    def add_refund(self, community_id: str, refund: Refund) -> None:
        self._staged.add(self._repo.refund_entry(community_id, refund, new=True))

    def save_refund(self, community_id: str, refund: Refund) -> None:
        self._staged.add(self._repo.refund_entry(community_id, refund, new=False))

    def refunds(self, community_id: str, payment_id: str) -> builtins.list[Refund]:
        return self._repo.refunds(community_id, payment_id)


class UowChargeKeys:
    def __init__(self, table: str, staged: _Staged) -> None:
        self._table = table
        self._staged = staged

    def claim(
        self, sub: Subscription, charge_key: str, payment_id: str, status: str = "pending"
    ) -> None:
        self._staged.add(
            charge_key_claim_entry(
                self._table, sub.community_id, sub.id, charge_key, payment_id, status
            )
        )

    def resolve(self, sub: Subscription, charge_key: str, payment_id: str, status: str) -> None:
        self._staged.add(
            charge_key_resolve_entry(
                self._table, sub.community_id, sub.id, charge_key, payment_id, status
            )
        )


class UowAudit:
    def __init__(self, table: str, staged: _Staged) -> None:
        self._table = table
        self._staged = staged
        self.recorded: list[tuple[Subscription, AuditEvent]] = []

    def record(self, sub: Subscription, event: AuditEvent, *, changes_state: bool) -> None:
        self._staged.add(
            audit_events.put_entry(
                self._table, sub.community_id, sub.id, event, sub.version, changes_state
            )
        )
        self.recorded.append((sub, event))

    def log_committed(self) -> None:
        for sub, event in self.recorded:
            log_state_change(sub.community_id, sub.id, sub.version, event)


class UowCredit:
    def __init__(self, table: str, staged: _Staged) -> None:
        self._table = table
        self._staged = staged

    def change(self, community_id: str, profile_id: str, currency: str, delta: int) -> None:
        if delta:
            self._staged.add(
                credit_change_entry(self._table, community_id, profile_id, currency, delta)
            )


class UowCards:
    def __init__(self, store: CardSnapshots, staged: _Staged) -> None:
        self._store = store
        self._staged = staged

    def find(self, community_id: str, payment_method_id: str) -> Mapping[str, Any] | None:
        return self._store.find(community_id, payment_method_id)

    def update_from_event(
        self,
        community_id: str,
        payment_method_id: str,
        changes: Mapping[str, Any],
        event_created: int,
    ) -> None:
        self._staged.add(
            card_update_entry(
                self._store.table, community_id, payment_method_id, changes, event_created
            )
        )

    def mark_detached(self, community_id: str, payment_method_id: str, detached_at: str) -> None:
        self._staged.add(
            card_detached_entry(self._store.table, community_id, payment_method_id, detached_at)
        )


class UowCommunities:
    def __init__(self, table: str, staged: _Staged) -> None:
        self._table = table
        self._staged = staged

    def mark_deauthorized(self, community_id: str, account: str, at: datetime) -> None:
        self._staged.add(deauthorized_entry(self._table, community_id, account, at))


class UowOutbox:
    """Events to the platform: however many a change stages, they become ONE outbox item of
    the change's transaction (platform_events.outbox_entry), added at commit."""

    def __init__(self) -> None:
        self.events: list[PlatformEvent] = []
        self.checks: list[AccessCheck] = []

    def add(self, event: PlatformEvent) -> None:
        self.events.append(event)

    def check_access(self, check: AccessCheck) -> None:
        self.checks.append(check)


@dataclass(frozen=True)
class LinkPlan:
    """The transaction's entries with the links' share, and what is left to the LinkWriter."""

    entries: list[Entry]
    inline_states: frozenset[int]  # positions of the state entries that risk their condition
    after_commit: list[LinkChange]

    @staticmethod
    def of(
        entries: list[Entry],
        changes: list[LinkChange],
        table: str,
        writer: LinkWriter,
        now: datetime,
        *,
        inline: bool,
    ) -> LinkPlan:
        """The ONE decision, for every path that changes links. With `inline`, each change
        whose link writes still fit the bounds rides in the transaction; the others (and all,
        without `inline`) stage their state entry for the writer."""
        planned = list(entries)
        inline_states: set[int] = set()
        after_commit: list[LinkChange] = []
        for change in changes:
            writes = link_writes(table, change, now) if inline else []
            if inline and len(planned) + 1 + len(writes) <= INLINE_LINKS_MAX_ITEMS:
                inline_states.add(len(planned))
                planned += [links_written_entry(table, change), *writes]
            else:
                planned.append(writer.state_entry(change, now))
                after_commit.append(change)
        if inline_states and _request_bytes(planned) > INLINE_LINKS_MAX_BYTES:
            return LinkPlan.of(entries, changes, table, writer, now, inline=False)
        return LinkPlan(planned, frozenset(inline_states), after_commit)


def _request_bytes(entries: list[Entry]) -> int:
    """About what the request weighs: its entries as the JSON sent on the wire."""
    return len(json.dumps(entries, separators=(",", ":"), default=str))


class DynamoUnitOfWork:
    def __init__(
        self,
        client: Any,
        subscriptions: SubscriptionRepository,
        payments: PaymentRepository,
        cards: CardSnapshots,
        webhook_events: WebhookEventRepository,
        now: datetime,
    ) -> None:
        self._client = client
        self._webhook_events = webhook_events
        self._staged = _Staged()
        self._now = now
        table = subscriptions.table
        self._links = LinkWriter(client, table, subscriptions.due_shards, subscriptions)
        self.subscriptions = UowSubscriptions(subscriptions, self._staged)
        self.payments = UowPayments(payments, self.subscriptions, self._staged)
        self.charge_keys = UowChargeKeys(table, self._staged)
        self.audit = UowAudit(table, self._staged)
        self.credit = UowCredit(table, self._staged)
        self.cards = UowCards(cards, self._staged)
        self.communities = UowCommunities(table, self._staged)
        self.outbox = UowOutbox()
        self._table = table
        self._now = now
        self.committed = False

    def record_webhook_event(self, event: WebhookEvent) -> None:
        self._staged.first = self._webhook_events.put_entry(event)

    def commit(self) -> None:
        if self.committed:
            raise RuntimeError("a unit of work commits once")
        entries = self._staged.all()
        record = outbox_entry(self._table, self.outbox.events, self.outbox.checks, self._now)
        if record is not None and entries:  # events only ever go with the change they report
            entries.append(record)
        plan = self._link_plan(entries, inline=True)
        guarded_first = self._staged.first is not None
        try:
            commit_transaction(self._client, plan.entries, guarded_first=guarded_first)
        except ConditionsFailed as refused:
            if not plan.inline_states or not refused.entries <= plan.inline_states:
                self._staged.refused_items = {
                    id(plan.entries[n]): item for n, item in refused.items.items()
                }
                raise
            # Only "every link was written" failed: a writer left links behind (a crash, a
            # big list before). Nothing was written; the writer brings them all up to date.
            plan = self._link_plan(entries, inline=False)
            commit_transaction(self._client, plan.entries, guarded_first=guarded_first)
        self.committed = True
        self.audit.log_committed()
        for change in plan.after_commit:
            self._links.apply(change, self._now)

    def _link_plan(self, entries: list[Entry], *, inline: bool) -> LinkPlan:
        changes = self.subscriptions.link_changes
        return LinkPlan.of(entries, changes, self._table, self._links, self._now, inline=inline)

    def __enter__(self) -> DynamoUnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Nothing is written before commit(): leaving without it discards what was staged."""
