"""API.md's subscription, payment, refund and preview objects, built from domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from chalicelib.adapters.dynamodb.codec import format_time
from chalicelib.adapters.stripe.customers import Card
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.payments import Payment, Refund
from chalicelib.domain.periods import Period
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Subscription

LINE_FIELDS = (
    "kind",
    "description",
    "plan_name",
    "profile_id",
    "unit_amount",
    "quantity",
    "amount",
)


class ProfileBatchReader(Protocol):
    def get_many(self, community_id: str, profile_ids: list[str]) -> dict[str, Profile]: ...


class CardFinder(Protocol):
    def find(self, community_id: str, payment_method_id: str) -> Card | None: ...


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _period(period: Period | None) -> dict[str, str] | None:
    if period is None:
        return None
    return {"start": format_time(period.start), "end": format_time(period.end)}


class ProfileCache:
    """Profiles read once per request, in batches (a view names the owner and every member)."""

    def __init__(self, profiles: ProfileBatchReader, community_id: str) -> None:
        self._profiles = profiles
        self._community_id = community_id
        self._found: dict[str, Profile | None] = {}

    def prefetch(self, profile_ids: list[str]) -> None:
        missing = [pid for pid in dict.fromkeys(profile_ids) if pid not in self._found]
        if not missing:
            return
        found = self._profiles.get_many(self._community_id, missing)
        for pid in missing:
            self._found[pid] = found.get(pid)

    def get(self, profile_id: str) -> Profile | None:
        if profile_id not in self._found:
            self.prefetch([profile_id])
        return self._found[profile_id]


class SubscriptionViews:
    """Subscription objects with their owner, members and card (batched reads, no Stripe)."""

    def __init__(self, profiles: ProfileBatchReader, cards: CardFinder) -> None:
        self._profiles = profiles
        self._cards = cards

    def cache(self, community_id: str) -> ProfileCache:
        return ProfileCache(self._profiles, community_id)

    def view(self, sub: Subscription, profiles: ProfileCache | None = None) -> dict[str, Any]:
        profiles = profiles or self.cache(sub.community_id)
        card = (
            self._cards.find(sub.community_id, sub.payment_method_id)
            if sub.payment_method_id
            else None
        )
        return subscription_view(sub, profiles, card)


def subscription_view(
    sub: Subscription, profiles: ProfileCache, card: Card | None
) -> dict[str, Any]:
    profiles.prefetch([sub.owner_id, *sub.member_ids])
    owner = profiles.get(sub.owner_id)
    members = []
    for member in sub.members:
        profile = profiles.get(member.profile_id)
        members.append(
            {
                "profile_id": member.profile_id,
                "name": profile.name if profile else "",
                "kind": profile.kind if profile else "customer",
                "added_at": format_time(member.added_at),
                "activation_fee": {
                    "status": member.activation_fee.status,
                    "amount": member.activation_fee.amount,
                    "payment_id": member.activation_fee.payment_id,
                },
                "removal": (
                    {"effective_at": format_time(member.removal_effective_at)}
                    if member.removal_effective_at
                    else None
                ),
            }
        )
    pending: dict[str, Any] = {}
    if sub.pending_changes.billing_cycle is not None:
        pending["billing_cycle"] = sub.pending_changes.billing_cycle
    if sub.pending_changes.plan_id is not None:
        pending["plan_id"] = sub.pending_changes.plan_id
    if card is not None:
        method: dict[str, Any] | None = card.view()
    elif sub.payment_method_id:
        method = {
            "id": sub.payment_method_id,
            "brand": None,
            "last4": None,
            "exp_month": None,
            "exp_year": None,
            "detached": False,
        }
    else:
        method = None
    return {
        "id": sub.id,
        "status": sub.status,
        "plan_id": sub.plan_id,
        "plan": {
            "id": sub.plan_id,
            "name": sub.plan.name,
            "currency": sub.currency,
            "unit_amount": sub.unit_amount,
            "activation_fee": sub.plan.activation_fee,
        },
        "billing_cycle": sub.billing_cycle,
        "owner_id": sub.owner_id,
        "billed_to": {
            "profile_id": sub.owner_id,
            "name": owner.name if owner else "",
            "email": owner.email if owner else None,
        },
        "payment_method": method,
        "members": members,
        "current_period": _period(sub.current_period),
        "pending_changes": pending,
        "cancel_at": _time(sub.cancel_at),
        "failed_at": _time(sub.failed_at),
        "next_retry_at": _time(sub.next_retry_at),
        "cancelled_at": _time(sub.cancelled_at),
        "cancellation_reason": sub.cancellation_reason,
        "waive_activation_fee": sub.waive_activation_fee,
        "created_at": format_time(sub.created_at),
        "activated_at": _time(sub.activated_at),
        "version": sub.version,
        "carried": [
            {
                "amount": c.amount,
                "incurred_at": format_time(c.incurred_at),
                "description": c.description,
            }
            for c in sub.carried
        ],
    }


def payment_view(payment: Payment) -> dict[str, Any]:
    """The API.md payment object."""
    method = payment.payment_method
    failure = payment.failure
    return {
        "id": payment.id,
        "subscription_id": payment.subscription_id,
        "kind": payment.kind,
        "status": payment.status,
        "currency": payment.currency,
        "lines": [{field: getattr(line, field) for field in LINE_FIELDS} for line in payment.lines],
        "subtotal": payment.subtotal,
        "credit_applied": payment.credit_applied,
        "total": payment.total,
        "amount_paid": payment.amount_paid,
        "amount_refunded": payment.amount_refunded,
        "amount_refund_pending": payment.amount_refund_pending,
        "application_fee_amount": payment.application_fee_amount,
        "billed_to": {
            "profile_id": payment.billed_to.profile_id,
            "name": payment.billed_to.name,
            "email": payment.billed_to.email,
        },
        "payment_method": (
            {"type": method.type, "brand": method.brand, "last4": method.last4} if method else None
        ),
        "stripe": {
            "account_id": payment.stripe.account_id,
            "payment_intent_id": payment.stripe.payment_intent_id,
            "charge_id": payment.stripe.charge_id,
        },
        "failure": (
            {"code": failure.code, "decline_code": failure.decline_code, "message": failure.message}
            if failure
            else None
        ),
        "period": _period(payment.period),
        "created_at": format_time(payment.created_at),
        "updated_at": format_time(payment.updated_at),
    }


def refund_view(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "amount": refund.amount,
        "status": refund.status,
        "created_at": format_time(refund.created_at),
    }


def charge_plan_view(plan: ChargePlan, application_fee_amount: int) -> dict[str, Any]:
    """`GET /v1/subscriptions/{id}/preview`: what a charge would be."""
    return {
        "lines": [{field: getattr(line, field) for field in LINE_FIELDS} for line in plan.lines],
        "subtotal": plan.subtotal,
        "credit_applied": plan.credit_applied,
        "total": plan.total,
        "currency": plan.currency,
        "application_fee_amount": application_fee_amount,
        "period": _period(plan.period),
        "carried_forward": plan.carried_forward,
    }
