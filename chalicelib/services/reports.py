"""`GET /v1/reports/summary?currency=`, computed with Queries only (never a Scan).

Money figures are of one currency (`?currency=`, default the community's): a community whose
plans charge in several currencies reads one summary per currency, never a sum across them.

- subscriptions_by_status: one Select=COUNT Query per status (gsi1 by status).
- mrr: active subscriptions (gsi1 Query): unit price x members billed at the next renewal,
  yearly normalised to a month (year / 12, rounded half up); only the community's currency.
- members_with_access: distinct profiles with free access (profiles' free-access index) or a
  current member of an active or expiring subscription.
- payments_last_30_days: payments created in the last 30 days (a gsi1sk range Query) that took
  money: their count, amount paid, amount refunded and application fees.
- failed_payment_outstanding: what the failed_payment subscriptions owe: the retry amount
  (unit price of the plan and cycle they renew on x members).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from chalicelib.domain.communities import Community
from chalicelib.domain.currencies import supported_currency
from chalicelib.domain.money import monthly_equivalent
from chalicelib.domain.payments import Payment
from chalicelib.domain.subscriptions import STATUSES, Subscription
from chalicelib.services.ports import Clock

COLLECTED = ("succeeded", "partially_refunded", "refunded", "disputed")


class SubscriptionStats(Protocol):
    def count_by_status(self, community_id: str) -> dict[str, int]: ...
    def all_with_status(self, community_id: str, status: str) -> list[Subscription]: ...


class RecentPayments(Protocol):
    def created_since(self, community_id: str, since: datetime) -> list[Payment]: ...


class FreeAccessIndex(Protocol):
    def free_access_ids(self, community_id: str) -> set[str]: ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


class ReportService:
    def __init__(
        self,
        communities: CommunityReader,
        subscriptions: SubscriptionStats,
        payments: RecentPayments,
        profiles: FreeAccessIndex,
        clock: Clock,
    ) -> None:
        self._communities = communities
        self._subscriptions = subscriptions
        self._payments = payments
        self._profiles = profiles
        self._clock = clock

    def summary(self, community_id: str, currency: str | None = None) -> dict[str, object]:
        community_currency = self._communities.get(community_id).currency
        currency = supported_currency(currency).code if currency else community_currency
        now = self._clock.now()
        subs = self._subscriptions
        counts = subs.count_by_status(community_id)
        mrr = 0
        with_access = self._profiles.free_access_ids(community_id)
        for status in ("active", "expiring"):
            for sub in subs.all_with_status(community_id, status):
                with_access |= {m.profile_id for m in sub.members if m.is_current(now)}
                if status == "active" and sub.currency == currency:
                    plan = sub.next_plan
                    cycle = sub.pending_changes.billing_cycle or sub.billing_cycle
                    billed = plan.unit_amount(cycle) * len(sub.staying_members())
                    mrr += monthly_equivalent(billed, cycle)
        outstanding = 0
        for sub in subs.all_with_status(community_id, "failed_payment"):
            if sub.currency == currency:
                plan = sub.next_plan
                cycle = sub.pending_changes.billing_cycle or sub.billing_cycle
                outstanding += plan.unit_amount(cycle) * len(sub.members)
        recent = [
            p
            for p in self._payments.created_since(community_id, now - timedelta(days=30))
            if p.status in COLLECTED and p.currency == currency
        ]
        return {
            "currency": currency,
            "subscriptions_by_status": {status: counts.get(status, 0) for status in STATUSES},
            "mrr": mrr,
            "members_with_access": len(with_access),
            "payments_last_30_days": {
                "count": len(recent),
                "amount_paid": sum(p.amount_paid for p in recent),
                "amount_refunded": sum(p.amount_refunded for p in recent),
                "application_fees": sum(p.application_fee_amount for p in recent),
            },
            "failed_payment_outstanding": outstanding,
        }
