"""`GET /v1/reports/summary`, computed with Queries only (never a Scan).

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

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.dynamodb.items import to_value
from chalicelib.domain.money import monthly_equivalent
from chalicelib.domain.subscriptions import STATUSES

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

COLLECTED = ("succeeded", "partially_refunded", "refunded", "disputed")


def _free_access_profile_ids(container: Container, community_id: str) -> set[str]:
    """Ids on the profiles' sparse free-access index (profiles.py: gsi3 `...#PROFILES#FREE`)."""
    ids: set[str] = set()
    request: dict[str, Any] = {
        "TableName": container.settings.table_name,
        "IndexName": "gsi3",
        "KeyConditionExpression": "gsi3pk = :pk",
        "ExpressionAttributeValues": {":pk": to_value(f"C#{community_id}#PROFILES#FREE")},
        "ProjectionExpression": "id",
    }
    while True:
        response = container.dynamodb.query(**request)
        ids |= {item["id"]["S"] for item in response.get("Items", []) if "id" in item}
        if not response.get("LastEvaluatedKey"):
            return ids
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def summary(container: Container, community_id: str) -> dict[str, Any]:
    community = container.communities.get(community_id)
    currency = community.currency
    now = container.clock.now()
    subs = container.subscriptions
    counts = subs.count_by_status(community_id)
    mrr = 0
    with_access = _free_access_profile_ids(container, community_id)
    for status in ("active", "expiring"):
        for sub in subs.all_with_status(community_id, status):
            with_access |= {m.profile_id for m in sub.members if m.is_current(now)}
            if status == "active" and sub.currency == currency:
                plan = sub.pending_changes.plan or sub.plan
                cycle = sub.pending_changes.billing_cycle or sub.billing_cycle
                billed = plan.unit_amount(cycle) * len(sub.staying_members())
                mrr += monthly_equivalent(billed, cycle)
    outstanding = 0
    for sub in subs.all_with_status(community_id, "failed_payment"):
        if sub.currency == currency:
            plan = sub.pending_changes.plan or sub.plan
            cycle = sub.pending_changes.billing_cycle or sub.billing_cycle
            outstanding += plan.unit_amount(cycle) * len(sub.members)
    recent = [
        p
        for p in container.payments.created_since(community_id, now - timedelta(days=30))
        if p.get("status") in COLLECTED and p.get("currency") == currency
    ]
    return {
        "currency": currency,
        "subscriptions_by_status": {status: counts.get(status, 0) for status in STATUSES},
        "mrr": mrr,
        "members_with_access": len(with_access),
        "payments_last_30_days": {
            "count": len(recent),
            "amount_paid": sum(int(p["amount_paid"]) for p in recent),
            "amount_refunded": sum(int(p["amount_refunded"]) for p in recent),
            "application_fees": sum(int(p["application_fee_amount"]) for p in recent),
        },
        "failed_payment_outstanding": outstanding,
    }
