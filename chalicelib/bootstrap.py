"""Lazy wiring of adapters. Nothing is created until a code path asks for it.

`container()` returns the process-wide Container for the current environment. Each adapter is
a cached property, so a path that never touches Stripe never imports stripe.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.config import SecretsProvider, Settings
from chalicelib.services.ports import Clock

if TYPE_CHECKING:  # issue 3's adapters, typed for callers; imported lazily at run time
    from chalicelib.adapters.dynamodb.communities import CommunityRepository
    from chalicelib.adapters.dynamodb.cursors import CursorCodec
    from chalicelib.adapters.dynamodb.idempotency import IdempotencyStore
    from chalicelib.adapters.dynamodb.plans import PlanRepository
    from chalicelib.adapters.dynamodb.profiles import ProfileRepository
    from chalicelib.adapters.stripe.customers import StripeCustomers
    from chalicelib.services.api_keys import ApiKeyService


class Container:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock_override = clock

    @cached_property
    def secrets(self) -> SecretsProvider:
        return SecretsProvider(self.settings)

    @cached_property
    def dynamodb(self) -> Any:
        from chalicelib.adapters.aws import aws_client

        return aws_client("dynamodb", self.settings)

    @cached_property
    def sqs(self) -> Any:
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

    # --- issue 5: Stripe webhooks ---
    @cached_property
    def webhook_events(self) -> Any:
        from chalicelib.adapters.dynamodb.webhook_events import WebhookEventRepository

        return WebhookEventRepository(self.dynamodb, self.settings.table_name, self.cursors)

    @cached_property
    def webhooks(self) -> Any:
        from chalicelib.services.webhook_handlers import build_webhook_service

        return build_webhook_service(self)

    # --- issue 4: subscriptions and payments ---
    @cached_property
    def payments(self) -> Any:
        from chalicelib.adapters.dynamodb.payments import PaymentRepository

        return PaymentRepository(
            self.dynamodb, self.settings.table_name, self.cursors, self.settings.due_index_shards
        )

    @cached_property
    def subscriptions(self) -> Any:
        from chalicelib.adapters.dynamodb.subscriptions import SubscriptionRepository

        return SubscriptionRepository(
            self.dynamodb, self.settings.table_name, self.cursors, self.settings.due_index_shards
        )

    @cached_property
    def audit_events(self) -> Any:
        from chalicelib.adapters.dynamodb.audit_events import AuditEventRepository

        return AuditEventRepository(self.dynamodb, self.settings.table_name, self.cursors)

    @cached_property
    def payment_gateway(self) -> Any:
        from chalicelib.adapters.stripe.payments import StripePaymentGateway

        return StripePaymentGateway(self.settings, self.secrets)

    @cached_property
    def mailer(self) -> Any:
        from chalicelib.adapters.email import SesMailer

        return SesMailer(self.settings)

    @cached_property
    def scheduled_actions(self) -> Any:
        """Due group -> scheduled action (chalicelib/jobs/actions.py); tests may assign others."""
        from chalicelib.jobs.actions import default_actions

        return default_actions()


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
