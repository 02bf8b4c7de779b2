"""Members of an active subscription: add (charged, prorated), remove (period end / now), restore.

Emails after a successful addition (SES, best effort; the addition itself is already final),
to every added member who is a customer (docs/rules/emails.md), naming the community:
- `send_welcome_email`: a welcome (the plan, the community, the owner whose membership it is);
- `send_receipt_email`: the payment's receipt (who paid, when, the order summary; never the
  owner's card).
Dependents have no email: every added dependent is listed in `emails_skipped` when any email
was asked for. `emails_sent` lists the profile ids that were mailed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chalicelib.adapters.email import Email
from chalicelib.domain.billing.charges import ChargePlan
from chalicelib.domain.charge_planning import plan_add_members
from chalicelib.domain.communities import Community
from chalicelib.domain.currencies import currency
from chalicelib.domain.members import MemberAddition
from chalicelib.domain.payments import Payment
from chalicelib.domain.profiles import Profile
from chalicelib.domain.subscription_changes import remove_member, restore_member
from chalicelib.domain.subscriptions import Subscription
from chalicelib.observability import logger
from chalicelib.services.receipts import order_summary, when
from chalicelib.services.subscriptions import SubscriptionService


class Mailer(Protocol):
    def send(self, email: Email) -> str: ...


class CommunityReader(Protocol):
    def get(self, community_id: str) -> Community: ...


@dataclass(frozen=True)
class MembersAdded:
    subscription: Subscription
    payment: Payment | None
    emails_sent: list[str] = field(default_factory=list)
    emails_skipped: list[str] = field(default_factory=list)


class MemberService:
    def __init__(
        self, subscriptions: SubscriptionService, communities: CommunityReader, mailer: Mailer
    ) -> None:
        self._subscriptions = subscriptions
        self._communities = communities
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
                current_plans=service.stored_plans(community_id, sub),
            )

        result = service.charged_change(community_id, subscription_id, planner)
        if not (send_welcome_email or send_receipt_email):
            return MembersAdded(result.subscription, result.payment)
        skipped = [p.id for p in profiles if not p.is_customer or not p.email]
        # The seed: the NEW members get the receipt if they are customers (not the owner, who
        # pays and sees the payment anyway).
        recipients = [p for p in profiles if p.is_customer and p.email]
        emails = self._emails(
            community_id,
            result.subscription,
            result.payment if send_receipt_email else None,
            welcome=send_welcome_email,
        )
        sent = [
            profile.id
            for profile in recipients
            # a list, not any(generator): every email is tried even when one fails
            if any([self._mail(profile, *compose(profile)) for compose in emails])
        ]
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

    def _emails(
        self,
        community_id: str,
        sub: Subscription,
        payment: Payment | None,
        *,
        welcome: bool,
    ) -> list[Callable[[Profile], tuple[str, str]]]:
        """What each new member is sent; none when what they say cannot be read (logged)."""
        try:
            community = self._communities.get(community_id)
            owner = self._subscriptions.profile(community_id, sub.owner_id, "owner_id")
        except Exception:
            logger.exception("email_failed", extra={"subscription_id": sub.id})
            return []
        emails: list[Callable[[Profile], tuple[str, str]]] = []
        if welcome:
            emails.append(lambda member: _welcome(member, owner, sub, community))
        if payment is not None:
            emails.append(lambda member: _receipt(payment, member, sub, community))
        return emails

    def _mail(self, member: Profile, subject: str, body: str) -> bool:
        try:
            self._mailer.send(Email(to=member.email or "", subject=subject, body=body))
        except Exception:
            logger.exception("email_failed", extra={"profile_id": member.id, "subject": subject})
            return False
        return True


def _welcome(
    member: Profile, owner: Profile, sub: Subscription, community: Community
) -> tuple[str, str]:
    membership = f"{sub.plan.name} at {community.name}"
    return (
        f"Welcome to {membership}",
        f"Hello {member.name},\n\nyou are now a member of {membership}, on the membership "
        f"{owner.name} holds.\n",
    )


def _receipt(
    payment: Payment, member: Profile, sub: Subscription, community: Community
) -> tuple[str, str]:
    """The receipt for a new member, amounts with the currency's own decimals (JPY 0, USD 2,
    KWD 3)."""
    money = currency(payment.currency).format
    return (
        f"Receipt from {community.name} for payment {payment.id}",
        f"Hello {member.name},\n\n{payment.billed_to.name} paid {money(payment.total)} for your "
        f"{sub.plan.name} membership at {community.name} on {when(payment.created_at)}.\n\n"
        f"Receipt for payment {payment.id}:\n{order_summary(payment)}\n",
    )
