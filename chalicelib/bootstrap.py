"""Lazy wiring of adapters. Nothing is created until a code path asks for it.

`container()` returns the process-wide Container for the current environment. Each adapter is
a cached property, so a path that never touches Stripe never imports stripe.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.config import Settings
from chalicelib.services.ports import Clock

if TYPE_CHECKING:  # typed for callers; imported lazily at run time
    from botocore.client import BaseClient

    from chalicelib.adapters.dynamodb.audit_events import AuditEventRepository
    from chalicelib.adapters.dynamodb.card_snapshots import CardSnapshots
    from chalicelib.adapters.dynamodb.communities import CommunityRepository
    from chalicelib.adapters.dynamodb.cursors import CursorCodec
    from chalicelib.adapters.dynamodb.due_index import (
        AdvanceLease,
        DueIndex,
        SweepCursors,
    )
    from chalicelib.adapters.dynamodb.dunning import DunningStore
    from chalicelib.adapters.dynamodb.idempotency import IdempotencyStore
    from chalicelib.adapters.dynamodb.payments import PaymentRepository
    from chalicelib.adapters.dynamodb.plans import PlanRepository
    from chalicelib.adapters.dynamodb.platform_events import PlatformEventStore
    from chalicelib.adapters.dynamodb.profile_links import LinkWriter
    from chalicelib.adapters.dynamodb.profiles import ProfileRepository
    from chalicelib.adapters.dynamodb.subscriptions import SubscriptionRepository
    from chalicelib.adapters.dynamodb.webhook_events import WebhookEventRepository
    from chalicelib.adapters.email import SesMailer
    from chalicelib.adapters.stripe.customers import StripeCustomers
    from chalicelib.services.api_keys import ApiKeyService
    from chalicelib.services.billing_history import BillingHistory
    from chalicelib.services.cards import Cards
    from chalicelib.services.charging import Charging
    from chalicelib.services.dunning import DunningMailer
    from chalicelib.services.event_delivery import EventPublisher
    from chalicelib.services.members import MemberService
    from chalicelib.services.pay_now import PayNow
    from chalicelib.services.payment_links import PaymentLinks
    from chalicelib.services.payment_methods import PaymentMethodService
    from chalicelib.services.payments import PaymentService
    from chalicelib.services.ports import (
        BillingReader,
        PaymentGateway,
        StripeCallBudget,
        UnitOfWork,
    )
    from chalicelib.services.reports import ReportService
    from chalicelib.services.scheduled import ScheduledActions
    from chalicelib.services.subscriptions import SubscriptionService
    from chalicelib.services.views import SubscriptionViews
    from chalicelib.services.webhook_endpoints import WebhookEndpoints
    from chalicelib.services.webhooks import WebhookService


class Container:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock_override = clock

    @cached_property
    def secrets(self) -> SecretsProvider:
        return SecretsProvider(self.settings)

    @cached_property
    def dynamodb(self) -> BaseClient:
        from chalicelib.adapters.aws import aws_client

        return aws_client("dynamodb", self.settings)

    @cached_property
    def sqs(self) -> BaseClient:
        from chalicelib.adapters.aws import aws_client

        return aws_client("sqs", self.settings)

    @cached_property
    def clock(self) -> Clock:
        if self._clock_override is not None:
            return self._clock_override
        if self.settings.test_clock_enabled:
            from chalicelib.adapters.clock import StoredTestClock

            return StoredTestClock(
                self.dynamodb, self.settings.table_name, start=self.settings.test_clock_start
            )
        from chalicelib.adapters.clock import SystemClock

        return SystemClock()

    # --- issue 3: admin API (communities, keys, plans, profiles, payment methods) ---
    @cached_property
    def cursors(self) -> CursorCodec:
        from chalicelib.adapters.dynamodb.cursors import CursorCodec

        return CursorCodec.from_secret(self.secrets.get().platform_api_key)

    @cached_property
    def idempotency(self) -> IdempotencyStore:
        from chalicelib.adapters.dynamodb.idempotency import IdempotencyStore

        return IdempotencyStore(self.dynamodb, self.settings.table_name)

    @cached_property
    def communities(self) -> CommunityRepository:
        from chalicelib.adapters.dynamodb.communities import CommunityRepository

        return CommunityRepository(self.dynamodb, self.settings.table_name, self.cursors)

    @cached_property
    def api_keys(self) -> ApiKeyService:
        """`resolve(token) -> (community_id, key_id) | None`, used by the authorizer."""
        from chalicelib.adapters.dynamodb.api_keys import ApiKeyRepository
        from chalicelib.services.api_keys import ApiKeyService

        return ApiKeyService(ApiKeyRepository(self.dynamodb, self.settings.table_name), self.clock)

    @cached_property
    def plans(self) -> PlanRepository:
        from chalicelib.adapters.dynamodb.plans import PlanRepository

        return PlanRepository(self.dynamodb, self.settings.table_name, self.cursors)

    @cached_property
    def profiles(self) -> ProfileRepository:
        from chalicelib.adapters.dynamodb.profiles import ProfileRepository

        return ProfileRepository(self.dynamodb, self.settings.table_name, self.cursors)

    @cached_property
    def stripe_customers(self) -> StripeCustomers:
        from chalicelib.adapters.stripe.customers import StripeCustomers

        return StripeCustomers(self.settings, self.secrets)

    # --- Stripe webhooks ---
    @cached_property
    def webhook_events(self) -> WebhookEventRepository:
        from chalicelib.adapters.dynamodb.webhook_events import WebhookEventRepository

        return WebhookEventRepository(self.dynamodb, self.settings.table_name, self.cursors)

    @cached_property
    def webhooks(self) -> WebhookService:
        from chalicelib.services.webhook_handlers import WebhookHandlers
        from chalicelib.services.webhooks import WebhookService

        handlers = WebhookHandlers(
            self.unit_of_work,
            self.payment_service,
            self.communities,
            self.stripe_customers,
            self.clock,
            self.profiles,
        )
        return WebhookService(
            store=self.webhook_events,
            uow=self.unit_of_work,
            handlers=handlers.registry(),
            clock=self.clock,
            secrets=lambda: self.secrets.get().webhook_secrets,
            livemode=lambda: self.secrets.get().stripe_livemode,
        )

    # --- subscriptions and payments: repositories and the unit of work ---
    @cached_property
    def payments(self) -> PaymentRepository:
        from chalicelib.adapters.dynamodb.payments import PaymentRepository

        return PaymentRepository(
            self.dynamodb, self.settings.table_name, self.cursors, self.settings.due_index_shards
        )

    @cached_property
    def subscriptions(self) -> SubscriptionRepository:
        from chalicelib.adapters.dynamodb.subscriptions import SubscriptionRepository

        return SubscriptionRepository(
            self.dynamodb, self.settings.table_name, self.cursors, self.settings.due_index_shards
        )

    @cached_property
    def subscription_links(self) -> LinkWriter:
        """Writes and repairs subscriptions' profile links (the "links" due group)."""
        from chalicelib.adapters.dynamodb.profile_links import LinkWriter

        return LinkWriter(
            self.dynamodb,
            self.settings.table_name,
            self.settings.due_index_shards,
            self.subscriptions,
        )

    @cached_property
    def audit_events(self) -> AuditEventRepository:
        from chalicelib.adapters.dynamodb.audit_events import AuditEventRepository

        return AuditEventRepository(self.dynamodb, self.settings.table_name, self.cursors)

    @cached_property
    def card_snapshots(self) -> CardSnapshots:
        from chalicelib.adapters.dynamodb.card_snapshots import CardSnapshots

        return CardSnapshots(self.dynamodb, self.settings.table_name)

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work (the UnitOfWorkFactory the services take)."""
        from chalicelib.adapters.dynamodb.unit_of_work import DynamoUnitOfWork

        return DynamoUnitOfWork(
            self.dynamodb,
            self.subscriptions,
            self.payments,
            self.card_snapshots,
            self.webhook_events,
            self.clock.now(),
        )

    @cached_property
    def billing_reader(self) -> BillingReader:
        from chalicelib.adapters.dynamodb.billing_context import DynamoBillingReader

        return DynamoBillingReader(self.dynamodb, self.settings.table_name)

    @cached_property
    def payment_gateway(self) -> PaymentGateway:
        from chalicelib.adapters.stripe.payments import StripePaymentGateway

        return StripePaymentGateway(self.settings, self.secrets)

    @cached_property
    def mailer(self) -> SesMailer:
        from chalicelib.adapters.email import SesMailer

        return SesMailer(self.settings)

    # --- services ---
    @cached_property
    def cards(self) -> Cards:
        from chalicelib.services.cards import Cards

        return Cards(self.profiles, self.communities, self.stripe_customers, self.card_snapshots)

    @cached_property
    def charging(self) -> Charging:
        from chalicelib.services.charging import Charging

        return Charging(self.unit_of_work, self.payment_gateway, self.billing_reader, self.clock)

    @cached_property
    def subscription_service(self) -> SubscriptionService:
        from chalicelib.services.subscriptions import SubscriptionService

        return SubscriptionService(
            self.unit_of_work,
            self.charging,
            self.cards,
            self.plans,
            self.profiles,
            self.communities,
            self.subscriptions,
            self.audit_events,
            self.clock,
        )

    @cached_property
    def member_service(self) -> MemberService:
        from chalicelib.services.members import MemberService

        return MemberService(self.subscription_service, self.communities, self.mailer)

    @cached_property
    def payment_service(self) -> PaymentService:
        from chalicelib.services.payments import PaymentService

        return PaymentService(
            self.unit_of_work, self.charging, self.payment_gateway, self.payments, self.clock
        )

    # --- issue 16: rate control ---
    @cached_property
    def scheduled_payment_gateway(self) -> PaymentGateway:
        """The scheduled work's Stripe: stripe-python never sleeps on a 429 (the message goes
        back to the queue instead)."""
        from chalicelib.adapters.stripe.payments import StripePaymentGateway

        return StripePaymentGateway(self.settings, self.secrets, retry_rate_limits=False)

    @cached_property
    def stripe_budget(self) -> StripeCallBudget:
        """Each Stripe account's budget for scheduled calls, shared by every worker. Local and
        test stages (localstripe or fakes) have no Stripe limit to keep, so nothing is counted
        there unless a bench or test installs a budget (`box.stripe_budget = ...`)."""
        if self.settings.is_local:
            from chalicelib.services.scheduled import Unlimited

            return Unlimited()
        from chalicelib.adapters.dynamodb.rate_buckets import DynamoStripeBudget

        return DynamoStripeBudget(self.dynamodb, self.settings.table_name)

    @cached_property
    def scheduled(self) -> ScheduledActions:
        from chalicelib.services.charging import Charging
        from chalicelib.services.scheduled import ScheduledActions

        charging = Charging(
            self.unit_of_work, self.scheduled_payment_gateway, self.billing_reader, self.clock
        )
        return ScheduledActions(
            self.unit_of_work, charging, self.scheduled_payment_gateway, self.stripe_budget
        )

    # --- issue 15: pay-now links ---
    @cached_property
    def payment_links(self) -> PaymentLinks:
        from chalicelib.adapters.dynamodb.payment_links import PaymentLinkStore
        from chalicelib.services.payment_links import PaymentLinks

        return PaymentLinks(
            PaymentLinkStore(self.dynamodb, self.settings.table_name),
            self.subscriptions,
            lambda: self.settings.public_url,
        )

    @cached_property
    def payment_methods(self) -> PaymentMethodService:
        from chalicelib.services.payment_methods import PaymentMethodService

        return PaymentMethodService(
            self.profiles,
            self.communities,
            self.stripe_customers,
            self.card_snapshots,
            self.clock,
        )

    @cached_property
    def pay_now(self) -> PayNow:
        from chalicelib.services.pay_now import PayNow

        return PayNow(
            self.payment_links,
            self.subscription_service,
            self.payment_methods,
            self.charging,
            self.payment_gateway,
            self.communities,
            self.profiles,
            self.mailer,
            self.clock,
            self.unit_of_work,
            self.cards,
        )

    @cached_property
    def subscription_views(self) -> SubscriptionViews:
        from chalicelib.services.views import SubscriptionViews

        return SubscriptionViews(self.profiles, self.cards)

    @cached_property
    def reports(self) -> ReportService:
        from chalicelib.services.reports import ReportService

        return ReportService(
            self.communities, self.subscriptions, self.payments, self.profiles, self.clock
        )

    @cached_property
    def billing_history(self) -> BillingHistory:
        from chalicelib.services.billing_history import BillingHistory

        return BillingHistory(
            self.profiles, self.subscriptions, self.payments, self.subscription_views
        )

    # --- issue 7: scheduled jobs ---
    @cached_property
    def due_index(self) -> DueIndex:
        from chalicelib.adapters.dynamodb.due_index import DueIndex

        return DueIndex(self.dynamodb, self.settings.table_name)

    @cached_property
    def sweep_cursors(self) -> SweepCursors:
        from chalicelib.adapters.dynamodb.due_index import SweepCursors

        return SweepCursors(self.dynamodb, self.settings.table_name)

    @cached_property
    def advance_lease(self) -> AdvanceLease:
        from chalicelib.adapters.dynamodb.due_index import AdvanceLease

        return AdvanceLease(self.dynamodb, self.settings.table_name)

    # --- issue 13: events to the platform ---
    @cached_property
    def platform_events(self) -> PlatformEventStore:
        from chalicelib.adapters.dynamodb.platform_events import PlatformEventStore

        return PlatformEventStore(self.dynamodb, self.settings.table_name, self.cursors)

    def check_webhook_url(self, url: str) -> None:
        """The SSRF guard (raises UnsafeUrl); local stages also take http://127.0.0.1."""
        from chalicelib.adapters.webhook_sender import check_url

        check_url(url, local=self.settings.is_local)

    @cached_property
    def webhook_endpoints(self) -> WebhookEndpoints:
        from chalicelib.services.webhook_endpoints import WebhookEndpoints

        return WebhookEndpoints(self.platform_events, self.check_webhook_url, self.clock)

    @cached_property
    def event_publisher(self) -> EventPublisher:
        from chalicelib.adapters.webhook_sender import post
        from chalicelib.services.event_delivery import EventPublisher, MailNotifier, ProfileAccess

        bus = None
        if self.settings.event_bus_name:
            from chalicelib.adapters.aws import aws_client
            from chalicelib.adapters.event_bus import EventBridgeBus

            bus = EventBridgeBus(aws_client("events", self.settings), self.settings.event_bus_name)
        return EventPublisher(
            self.platform_events,
            ProfileAccess(self.profiles, self.subscriptions, self.clock),
            bus,
            post,
            self.check_webhook_url,
            MailNotifier(self.mailer, self.settings.email_sender),
            self.clock,
            listeners=[self.dunning.handle],
        )

    # --- issue 15: dunning emails ---
    @cached_property
    def dunning_store(self) -> DunningStore:
        from chalicelib.adapters.dynamodb.dunning import DunningStore

        return DunningStore(self.dynamodb, self.settings.table_name, self.settings.due_index_shards)

    @cached_property
    def dunning(self) -> DunningMailer:
        from chalicelib.services.dunning import DunningMailer

        return DunningMailer(
            self.unit_of_work,
            self.profiles,
            self.communities,
            self.dunning_store,
            self.mailer,
            self.payment_links,
            self.clock,
        )


_container: Container | None = None
_lock = threading.Lock()


def container() -> Container:
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = Container(Settings.from_env())
    return _container


def override_container(new: Container | None) -> None:
    """Install a container (tests), or forget the current one so the next call rebuilds it."""
    global _container
    with _lock:
        _container = new
