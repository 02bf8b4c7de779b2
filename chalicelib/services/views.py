"""API.md's subscription and payment objects, built from domain objects (plain dicts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.adapters.dynamodb.payments import payment_view
from chalicelib.adapters.dynamodb.timestamps import format_time
from chalicelib.domain.payments import Payment
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscriptions import Subscription
from chalicelib.services.cards import find_card

if TYPE_CHECKING:
    from datetime import datetime

    from chalicelib.bootstrap import Container

__all__ = ["ProfileCache", "payment_view", "subscription_view"]


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


class ProfileCache:
    """Profiles read once per request, in batches (a view names the owner and every member)."""

    def __init__(self, container: Container, community_id: str) -> None:
        self._container = container
        self._community_id = community_id
        self._found: dict[str, Profile | None] = {}

    def prefetch(self, profile_ids: list[str]) -> None:
        """Read the profile items not read yet with BatchGetItem (100 keys a request)."""
        from chalicelib.adapters.dynamodb.items import from_item
        from chalicelib.adapters.dynamodb.profiles import profile_from_item, profile_key

        missing = [pid for pid in dict.fromkeys(profile_ids) if pid not in self._found]
        table = self._container.settings.table_name
        for start in range(0, len(missing), 100):
            chunk = missing[start : start + 100]
            for pid in chunk:
                self._found[pid] = None
            keys = [profile_key(self._community_id, pid) for pid in chunk]
            request: dict[str, Any] = {table: {"Keys": keys}}
            while request:
                response = self._container.dynamodb.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(table, []):
                    profile = profile_from_item(from_item(raw))
                    self._found[profile.id] = profile
                request = response.get("UnprocessedKeys") or {}

    def get(self, profile_id: str) -> Profile | None:
        if profile_id not in self._found:
            self.prefetch([profile_id])
        return self._found[profile_id]


def subscription_view(
    container: Container, sub: Subscription, profiles: ProfileCache | None = None
) -> dict[str, Any]:
    profiles = profiles or ProfileCache(container, sub.community_id)
    profiles.prefetch([sub.owner_id, *sub.member_ids])
    owner = profiles.get(sub.owner_id)
    card = (
        find_card(container, sub.community_id, sub.payment_method_id)
        if sub.payment_method_id
        else None
    )
    period = sub.current_period
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
        "current_period": (
            {"start": format_time(period.start), "end": format_time(period.end)} if period else None
        ),
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
    }


def payments_view(payments: list[Payment]) -> list[dict[str, Any]]:
    return [payment_view(p) for p in payments]
