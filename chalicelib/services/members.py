"""Members of an active subscription: add (charged, prorated), remove (period end / now), restore.

Emails after a successful addition (SES, best effort; the addition itself is already final):
- `send_welcome_email`: a welcome to every added member who is a customer;
- `send_receipt_email`: the payment's receipt to the profile billed (the owner, a customer).
Dependents have no email: every added dependent is listed in `emails_skipped` when any email
was asked for. `emails_sent` lists the profile ids that were mailed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chalicelib.adapters.email import Email
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.charge_planning import plan_add_members
from chalicelib.domain.currencies import currency
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.payments import Payment
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscription_changes import remove_member, restore_member
from chalicelib.domain.subscriptions import Subscription
from chalicelib.observability import logger
from chalicelib.services.receipts import order_lines
from chalicelib.services.subscriptions import SubscriptionService


class Mailer(Protocol):
    def send(self, email: Email) -> str: ...


@dataclass(frozen=True)
class MembersAdded:
    subscription: Subscription
    payment: Payment | None
    emails_sent: list[str] = field(default_factory=list)
    emails_skipped: list[str] = field(default_factory=list)


class MemberService:
    def __init__(self, subscriptions: SubscriptionService, mailer: Mailer) -> None:
        self._subscriptions = subscriptions
        self._mailer = mailer

    def add(
        self,
        community_id: str,
        subscription_id: str,
        additions: Sequence[MemberAddition],
        *,
        send_welcome_email: bool,
        send_receipt_email: bool,
    ) -> MembersAdded:
        service = self._subscriptions
        profiles: list[Profile] = service.profiles(
            community_id, [a.profile_id for a in additions], "members", ".profile_id"
        )

        def planner(sub: Subscription, now: datetime) -> ChargePlan:
            return plan_add_members(
                sub,
                list(additions),
                now,
                owner_credit=service.owner_credit(community_id, sub.owner_id, sub.currency),
            )

        result = service.charged_change(community_id, subscription_id, planner)
        sent: list[str] = []
        skipped: list[str] = []
        if send_welcome_email or send_receipt_email:
            skipped = [p.id for p in profiles if not p.is_customer or not p.email]
        if send_welcome_email:
            for profile in profiles:
                if (
                    profile.is_customer
                    and profile.email
                    and self._mail(profile.email, *_welcome(profile, result.subscription))
                ):
                    sent.append(profile.id)
        if send_receipt_email and result.payment is not None:
            # The seed: the NEW member gets the receipt if they are a customer (not the owner,
            # who pays and sees the payment anyway).
            for profile in profiles:
                if (
                    profile.is_customer
                    and profile.email
                    and self._mail(profile.email, *_receipt(result.payment, profile))
                    and profile.id not in sent
                ):
                    sent.append(profile.id)
        return MembersAdded(result.subscription, result.payment, sent, skipped)

    def remove(
        self, community_id: str, subscription_id: str, profile_id: str, at: str
    ) -> Subscription:
        return self._subscriptions.transition(
            community_id,
            subscription_id,
            lambda sub, now: remove_member(sub, profile_id, at, now),  # type: ignore[arg-type]
        )

    def restore(self, community_id: str, subscription_id: str, profile_id: str) -> Subscription:
        return self._subscriptions.transition(
            community_id,
            subscription_id,
            lambda sub, now: restore_member(sub, profile_id, now),
        )

    def _mail(self, to: str, subject: str, body: str) -> bool:
        try:
            self._mailer.send(Email(to=to, subject=subject, body=body))
        except Exception:
            logger.exception("email_failed", extra={"subject": subject})
            return False
        return True


def _welcome(profile: Profile, sub: Subscription) -> tuple[str, str]:
    return (
        f"Welcome to {sub.plan.name}",
        f"Hello {profile.name},\n\nyou are now a member of {sub.plan.name} "
        f"(subscription {sub.id}).\n",
    )


def _receipt(payment: Payment, member: Profile) -> tuple[str, str]:
    """The receipt for a new member, amounts with the currency's own decimals (JPY 0, USD 2,
    KWD 3)."""
    money = currency(payment.currency).format
    lines = order_lines(payment)
    return (
        f"Receipt for payment {payment.id}",
        f"Hello {member.name},\n\nhere is the receipt for payment {payment.id}, which "
        f"{payment.billed_to.name} paid for your membership.\n\n"
        f"{lines}\n\nTotal: {money(payment.total)}\n",
    )
