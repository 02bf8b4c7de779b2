"""The real services wired to in-memory fakes (tests/support/fakes.py), as bootstrap.Container
wires them to DynamoDB and Stripe: lifecycle tests that run in milliseconds, without moto."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.adapters.clock import FixedClock
from chalicelib.domain.communities import Community
from chalicelib.domain.plans import Plan, new_plan
from chalicelib.domain.profiles import Profile
from chalicelib.services.cards import Cards
from chalicelib.services.charging import Charging
from chalicelib.services.members import MemberService
from chalicelib.services.pay_now import PayNow
from chalicelib.services.payment_links import PaymentLinks
from chalicelib.services.payments import PaymentService
from chalicelib.services.scheduled import ScheduledActions
from chalicelib.services.subscriptions import SubscriptionService
from tests.support.fakes import (
    AuditReads,
    CardChecks,
    FakeCardSetup,
    FakePaymentGateway,
    InMemoryDirectory,
    InMemoryPaymentLinkStore,
    InMemoryStore,
    PlanFinder,
    ProfileReader,
    SubscriptionReads,
)

START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
CID = "com_1"
PUBLIC_URL = "https://billing.example.org"


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, email: Any) -> str:
        self.sent.append(email)
        return f"msg_{len(self.sent)}"


class NoListing:
    def list(self, community_id: str, **kwargs: Any) -> Any:
        return [], False, None


@dataclass
class World:
    clock: FixedClock = field(default_factory=lambda: FixedClock(START))
    store: InMemoryStore = field(default_factory=InMemoryStore)
    gateway: FakePaymentGateway = field(default_factory=FakePaymentGateway)
    mailer: RecordingMailer = field(default_factory=RecordingMailer)

    def __post_init__(self) -> None:
        self.directory = InMemoryDirectory(self.store)
        self.card_checks = CardChecks(self.store)
        self.directory.communities[CID] = Community(CID, "Harbour gym", "usd", None, 0, START)
        uow = self.store.unit_of_work
        self.charging = Charging(uow, self.gateway, self.directory, self.clock)
        cards = Cards(
            ProfileReader(self.directory), self.directory, self.card_checks, self.card_checks
        )
        self.subscriptions = SubscriptionService(
            uow,
            self.charging,
            cards,
            PlanFinder(self.directory),
            ProfileReader(self.directory),
            self.directory,
            SubscriptionReads(self.store),
            AuditReads(self.store),
            self.clock,
        )
        self.members = MemberService(self.subscriptions, self.directory, self.mailer)
        self.payments = PaymentService(uow, self.charging, self.gateway, NoListing(), self.clock)
        self.scheduled = ScheduledActions(uow, self.charging, self.gateway)
        self.link_store = InMemoryPaymentLinkStore()
        self.payment_links = PaymentLinks(
            self.link_store, SubscriptionReads(self.store), lambda: PUBLIC_URL
        )
        self.card_setup = FakeCardSetup(self.card_checks, self.directory)
        self.pay_now = PayNow(
            self.payment_links,
            self.subscriptions,
            self.card_setup,
            self.charging,
            self.gateway,
            self.directory,
            ProfileReader(self.directory),
            self.mailer,
            self.clock,
            uow,
            cards,
        )

    # --- builders ---------------------------------------------------------------------------
    def plan(self, month: int = 3000, *, activation_fee: int = 0, **terms: Any) -> Plan:
        plan = new_plan(
            plan_id=f"plan_{len(self.directory.plans) + 1}",
            community_id=CID,
            name=terms.pop("name", "Gold"),
            description=None,
            currency=terms.pop("currency", "usd"),
            prices={"month": month, **terms.pop("prices", {})},
            activation_fee=activation_fee,
            failed_payment_grace_days=terms.pop("grace_days", 14),
            retry_schedule_days=terms.pop("retry_days", (3,)),
            max_members=terms.pop("max_members", None),
            now=self.clock.now(),
        )
        self.directory.plans[(CID, plan.id)] = plan
        return plan

    def customer(self, name: str, card: str = "pm_ok") -> Profile:
        """A customer with a Stripe customer and `card` attached (pm_ok, pm_decline, pm_auth)."""
        profile_id = f"prof_{name.lower()}"
        profile = Profile(
            profile_id,
            CID,
            "customer",
            name,
            f"{name.lower()}@example.org",
            None,
            False,
            {},
            "usd",
            self.clock.now(),
            stripe_customer_id=f"cus_{name.lower()}",
        )
        self.directory.profiles[(CID, profile_id)] = profile
        self.card_checks.on_stripe[card] = profile.stripe_customer_id or ""
        return profile

    def dependent(self, name: str, holder: Profile) -> Profile:
        profile = Profile(
            f"prof_{name.lower()}",
            CID,
            "dependent",
            name,
            None,
            holder.id,
            False,
            {},
            "usd",
            self.clock.now(),
        )
        self.directory.profiles[(CID, profile.id)] = profile
        return profile

    def inactive(self, plan: Plan, owner: Profile, *members: Profile, card: str = "pm_ok") -> str:
        """A new monthly subscription of `members` (default: the owner), paid with `card`."""
        sub = self.subscriptions.create(
            CID,
            plan_id=plan.id,
            owner_id=owner.id,
            member_ids=[m.id for m in members] or [owner.id],
            billing_cycle="month",
            payment_method_id=card,
            waive_activation_fee=False,
        )
        return sub.id

    def active(self, plan: Plan, owner: Profile, *members: Profile, card: str = "pm_ok") -> str:
        sub_id = self.inactive(plan, owner, *members, card=card)
        self.subscriptions.activate(CID, sub_id, None)
        return sub_id

    def renew_at_period_end(self, sub_id: str, late: timedelta = timedelta(0)) -> str:
        """Move the clock to the end of the subscription's period (and `late` past it), then run
        its renewal as the worker would; the renewal's outcome."""
        period = self.store.subscriptions[(CID, sub_id)].current_period
        assert period is not None
        self.clock.advance_to(period.end + late)
        return self.scheduled.renew(CID, sub_id, self.clock.now())
