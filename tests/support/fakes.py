"""Hand-written fakes of the service layer's ports (services/ports.py): no AWS, no Stripe.

`InMemoryStore` holds what a table would; `InMemoryUnitOfWork` stages changes and applies them
all-or-nothing at `commit()` with the same conditions the DynamoDB adapter writes:
- a subscription save needs the version it was read at, an add needs the id to be new;
- a payment save needs its revision;
- a charge-key claim needs the key free or held by a failed charge;
- a credit spend needs enough credit;
- the webhook-event record (registered first) needs the event new or failed, else the commit
  raises DuplicateEvent.
`store.fail_next_commits` queues exceptions a commit raises before it checks anything (faults).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any

from chalicelib.domain.errors import ConcurrentChange, DuplicateEvent, NotFound
from chalicelib.domain.events import AuditEvent
from chalicelib.domain.payment_reports import PaymentReport
from chalicelib.domain.payments import Payment, Refund
from chalicelib.domain.platform_events import AccessCheck, PlatformEvent
from chalicelib.domain.subscriptions import Subscription
from chalicelib.domain.webhook_events import EventStatus, WebhookEvent

Key = tuple[str, str]


@dataclass
class InMemoryStore:
    subscriptions: dict[Key, Subscription] = field(default_factory=dict)
    payments: dict[Key, Payment] = field(default_factory=dict)
    refunds: dict[Key, Refund] = field(default_factory=dict)
    charge_keys: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    audit: dict[Key, list[AuditEvent]] = field(default_factory=dict)
    credit: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (cid, pid, currency)
    cards: dict[Key, dict[str, Any]] = field(default_factory=dict)
    deauthorized: dict[str, str] = field(default_factory=dict)
    webhook_events: dict[str, WebhookEvent] = field(default_factory=dict)
    # The outbox: one entry per commit that reported something: (events, access checks).
    outbox: list[tuple[list[PlatformEvent], list[AccessCheck]]] = field(default_factory=list)
    fail_next_commits: list[Exception] = field(default_factory=list)
    commits: int = 0

    def unit_of_work(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)

    def put_webhook_event(self, event: WebhookEvent) -> bool:
        current = self.webhook_events.get(event.id)
        if current is not None and current.status is not EventStatus.FAILED:
            return False
        self.webhook_events[event.id] = event
        return True


Check = Callable[[InMemoryStore], bool]
Apply = Callable[[InMemoryStore], None]


class _Staged:
    def __init__(self) -> None:
        self.changes: list[tuple[Check, Apply]] = []


class FakeSubscriptions:
    def __init__(self, store: InMemoryStore, staged: _Staged) -> None:
        self._store = store
        self._staged = staged
        self._seen: dict[Key, Subscription] = {}

    def find(self, community_id: str, subscription_id: str) -> Subscription | None:
        found = self._store.subscriptions.get((community_id, subscription_id))
        if found is not None:
            self._seen[(community_id, subscription_id)] = found
        return found

    def get(self, community_id: str, subscription_id: str) -> Subscription:
        found = self.find(community_id, subscription_id)
        if found is None:
            raise NotFound(f"Subscription {subscription_id} not found.")
        return found

    def adopt(self, sub: Subscription) -> Subscription:
        self._seen[(sub.community_id, sub.id)] = sub
        return sub

    def add(self, sub: Subscription) -> None:
        key = (sub.community_id, sub.id)
        stored = replace(sub, version=1)
        self._staged.changes.append(
            (
                lambda s: key not in s.subscriptions,
                lambda s: s.subscriptions.__setitem__(key, stored),
            )
        )

    def save(self, sub: Subscription, expected_version: int) -> None:
        key = (sub.community_id, sub.id)
        before = self._seen.get(key)
        if before is None or before.version != expected_version:
            raise ValueError(f"subscription {sub.id} was not read at version {expected_version}")
        stored = replace(sub, version=expected_version + 1)

        def check(s: InMemoryStore) -> bool:
            current = s.subscriptions.get(key)
            return current is not None and current.version == expected_version

        self._staged.changes.append((check, lambda s: s.subscriptions.__setitem__(key, stored)))

    def delete(self, sub: Subscription) -> None:
        key = (sub.community_id, sub.id)

        def check(s: InMemoryStore) -> bool:
            current = s.subscriptions.get(key)
            return current is not None and current.version == sub.version

        self._staged.changes.append((check, lambda s: s.subscriptions.pop(key, None) and None))


class FakePayments:
    def __init__(self, store: InMemoryStore, subscriptions: FakeSubscriptions, staged: _Staged):
        self._store = store
        self._subscriptions = subscriptions
        self._staged = staged

    def find(self, community_id: str, payment_id: str) -> Payment | None:
        return self._store.payments.get((community_id, payment_id))

    def get(self, community_id: str, payment_id: str) -> Payment:
        found = self.find(community_id, payment_id)
        if found is None:
            raise NotFound(f"Payment {payment_id} not found.")
        return found

    def find_by_payment_intent(
        self, payment_intent_id: str, community_id: str | None = None
    ) -> Payment | None:
        for (cid, _), payment in self._store.payments.items():
            if payment.stripe.payment_intent_id == payment_intent_id and community_id in (
                None,
                cid,
            ):
                return payment
        return None

    def with_subscription(
        self, community_id: str, payment_id: str, subscription_id: str
    ) -> tuple[Payment, Subscription] | None:
        payment = self.find(community_id, payment_id)
        sub = self._subscriptions.find(community_id, subscription_id)
        if payment is None or sub is None or payment.subscription_id != subscription_id:
            return None
        return payment, sub

    def expect_settled(self, report: PaymentReport) -> None:
        """The domain's rule on the stored objects; a refused commit shows nothing (the
        handler reads them)."""
        payment_key = (report.community_id, report.payment_id)
        sub_key = (report.community_id, report.subscription_id or "")

        def check(s: InMemoryStore) -> bool:
            return report.changes_nothing(s.payments.get(payment_key), s.subscriptions.get(sub_key))

        self._staged.changes.append((check, lambda s: None))

    def seen_by_refused_checks(self) -> tuple[Payment, Subscription] | None:
        return None

    def add(self, payment: Payment) -> None:
        key = (payment.community_id, payment.id)
        stored = replace(payment, revision=1)
        self._staged.changes.append(
            (lambda s: key not in s.payments, lambda s: s.payments.__setitem__(key, stored))
        )

    def save(self, payment: Payment) -> None:
        key = (payment.community_id, payment.id)
        stored = replace(payment, revision=payment.revision + 1)

        def check(s: InMemoryStore) -> bool:
            current = s.payments.get(key)
            return current is not None and current.revision == payment.revision

        self._staged.changes.append((check, lambda s: s.payments.__setitem__(key, stored)))

    def add_refund(self, community_id: str, refund: Refund) -> None:
        key = (community_id, refund.id)
        self._staged.changes.append(
            (lambda s: key not in s.refunds, lambda s: s.refunds.__setitem__(key, refund))
        )

    def save_refund(self, community_id: str, refund: Refund) -> None:
        key = (community_id, refund.id)

        def check(s: InMemoryStore) -> bool:
            current = s.refunds.get(key)
            return current is not None and current.status == "pending"

        self._staged.changes.append((check, lambda s: s.refunds.__setitem__(key, refund)))

    def refunds(self, community_id: str, payment_id: str) -> list[Refund]:
        return [
            r
            for (cid, _), r in self._store.refunds.items()
            if cid == community_id and r.payment_id == payment_id
        ]


class FakeChargeKeys:
    def __init__(self, staged: _Staged) -> None:
        self._staged = staged

    def claim(
        self, sub: Subscription, charge_key: str, payment_id: str, status: str = "pending"
    ) -> None:
        key = (sub.community_id, sub.id, charge_key)

        def check(s: InMemoryStore) -> bool:
            held = s.charge_keys.get(key)
            return held is None or held[1] == "failed"

        self._staged.changes.append(
            (check, lambda s: s.charge_keys.__setitem__(key, (payment_id, status)))
        )

    def resolve(self, sub: Subscription, charge_key: str, payment_id: str, status: str) -> None:
        key = (sub.community_id, sub.id, charge_key)

        def check(s: InMemoryStore) -> bool:
            held = s.charge_keys.get(key)
            return held is not None and held[0] == payment_id

        self._staged.changes.append(
            (check, lambda s: s.charge_keys.__setitem__(key, (payment_id, status)))
        )


class FakeAudit:
    def __init__(self, staged: _Staged) -> None:
        self._staged = staged

    def record(self, sub: Subscription, event: AuditEvent, *, changes_state: bool) -> None:
        key = (sub.community_id, sub.id)
        self._staged.changes.append(
            (lambda s: True, lambda s: s.audit.setdefault(key, []).append(event))
        )


class FakeCredit:
    def __init__(self, staged: _Staged) -> None:
        self._staged = staged

    def change(self, community_id: str, profile_id: str, currency: str, delta: int) -> None:
        key = (community_id, profile_id, currency)

        def apply(s: InMemoryStore) -> None:
            s.credit[key] = s.credit.get(key, 0) + delta

        self._staged.changes.append((lambda s: s.credit.get(key, 0) + delta >= 0, apply))


class FakeCards:
    def __init__(self, store: InMemoryStore, staged: _Staged) -> None:
        self._store = store
        self._staged = staged

    def find(self, community_id: str, payment_method_id: str) -> Mapping[str, Any] | None:
        return self._store.cards.get((community_id, payment_method_id))

    def update_from_event(
        self,
        community_id: str,
        payment_method_id: str,
        changes: Mapping[str, Any],
        event_created: int,
    ) -> None:
        key = (community_id, payment_method_id)

        def check(s: InMemoryStore) -> bool:
            card = s.cards.get(key)
            return card is not None and int(card.get("card_event_created") or 0) < event_created

        def apply(s: InMemoryStore) -> None:
            s.cards[key] = {**s.cards[key], **changes, "card_event_created": event_created}

        self._staged.changes.append((check, apply))

    def mark_detached(self, community_id: str, payment_method_id: str, detached_at: str) -> None:
        key = (community_id, payment_method_id)

        def check(s: InMemoryStore) -> bool:
            card = s.cards.get(key)
            return card is not None and not card.get("detached_at")

        def apply(s: InMemoryStore) -> None:
            s.cards[key] = {**s.cards[key], "detached_at": detached_at}

        self._staged.changes.append((check, apply))


class FakeCommunities:
    def __init__(self, staged: _Staged) -> None:
        self._staged = staged

    def mark_deauthorized(self, community_id: str, account: str, at: datetime) -> None:
        self._staged.changes.append(
            (lambda s: True, lambda s: s.deauthorized.__setitem__(community_id, account))
        )


class FakeOutbox:
    def __init__(self) -> None:
        self.events: list[PlatformEvent] = []
        self.checks: list[AccessCheck] = []

    def add(self, event: PlatformEvent) -> None:
        self.events.append(event)

    def check_access(self, check: AccessCheck) -> None:
        self.checks.append(check)


class InMemoryUnitOfWork:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._staged = _Staged()
        self._record: WebhookEvent | None = None
        self.subscriptions = FakeSubscriptions(store, self._staged)
        self.payments = FakePayments(store, self.subscriptions, self._staged)
        self.charge_keys = FakeChargeKeys(self._staged)
        self.audit = FakeAudit(self._staged)
        self.credit = FakeCredit(self._staged)
        self.cards = FakeCards(store, self._staged)
        self.communities = FakeCommunities(self._staged)
        self.outbox = FakeOutbox()
        self.committed = False

    def record_webhook_event(self, event: WebhookEvent) -> None:
        self._record = event

    def commit(self) -> None:
        if self.committed:
            raise RuntimeError("a unit of work commits once")
        store = self._store
        if store.fail_next_commits:
            raise store.fail_next_commits.pop(0)
        record = self._record
        if record is not None:
            current = store.webhook_events.get(record.id)
            if current is not None and current.status is not EventStatus.FAILED:
                raise DuplicateEvent(record.id)
        if not all(check(store) for check, _ in self._staged.changes):
            raise ConcurrentChange("A condition failed (in memory).")
        if record is not None:
            store.webhook_events[record.id] = record
        for _, apply in self._staged.changes:
            apply(store)
        if self._staged.changes and (self.outbox.events or self.outbox.checks):
            store.outbox.append((list(self.outbox.events), list(self.outbox.checks)))
        store.commits += 1
        self.committed = True

    def __enter__(self) -> InMemoryUnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class InMemoryEventStore:
    """The webhook pipeline's EventStore over the same InMemoryStore."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.put_errors: list[Exception] = []

    def put(self, event: WebhookEvent) -> bool:
        if self.put_errors:
            raise self.put_errors.pop(0)
        return self._store.put_webhook_event(event)

    def get(self, event_id: str) -> WebhookEvent | None:
        return self._store.webhook_events.get(event_id)

    def fits(self, event: WebhookEvent) -> bool:
        from chalicelib.adapters.dynamodb.webhook_events import record_fits

        return record_fits(event)


# --- Stripe: a payment gateway that keeps PaymentIntents ---------------------------------------
def _stripe_minimum(code: str) -> int:
    """Stripe's minimum charge (a currency it does not charge in: no amount is enough)."""
    from chalicelib.domain.currencies import CURRENCIES

    found = CURRENCIES.get(code)
    return found.minimum_charge if found else 2**63


class FakePaymentGateway:
    """PaymentIntents in memory, with cards that behave like Stripe's test cards:
    `pm_ok` succeeds, `pm_decline` is declined (`pm_decline_<code>`: with that decline code,
    e.g. `pm_decline_stolen_card`), `pm_auth` needs authentication
    (`requires_action`); like Stripe, an amount under the currency's minimum is refused
    (`amount_too_small`). `fail_next` queues faults for the next calls: "before" (Stripe never
    saw the request: Unavailable), "after" (Stripe acted, the answer was lost: Unavailable),
    "429" (Stripe refused it unseen: StripeRateLimited) or "" (this call goes through). Refunds
    honour the idempotency key and refuse more than the charge; `cancel_intent` refuses a
    succeeded or canceled intent; `complete_authentication` plays the customer finishing an
    intent that needed it. An account in `disconnected` deauthorized the platform: Stripe
    refuses every call on it (AccountDisconnected; a charge fails `account_disconnected`)."""

    def __init__(self) -> None:
        self.intents: dict[str, dict[str, Any]] = {}
        self.requests: list[Any] = []
        self.refunds: list[dict[str, Any]] = []
        self.fail_next: list[str] = []
        self.rate_limited: list[Any] = []  # requests answered 429
        self.disconnected: set[str] = set()
        self.refused: list[tuple[str, str]] = []  # (call, account) refused: no access

    def _fault(self) -> str | None:
        return self.fail_next.pop(0) if self.fail_next else None

    def _check_access(self, call: str, account: str | None) -> None:
        from chalicelib.domain.errors import AccountDisconnected

        if account is not None and account in self.disconnected:
            self.refused.append((call, account))
            raise AccountDisconnected(f"Stripe account {account} disconnected the platform.")

    def charge(self, request: Any) -> Any:
        from chalicelib.adapters.stripe.payments import outcome_from_intent
        from chalicelib.domain.errors import StripeRateLimited, Unavailable

        if request.stripe_account_id in self.disconnected:
            from chalicelib.adapters.stripe.payments import ChargeFailure, IntentOutcome

            self.refused.append(("charge", request.stripe_account_id))
            failure = ChargeFailure("account_disconnected", None, "No access to the account.")
            return IntentOutcome("failed", None, None, failure)
        fault = self._fault()
        if fault == "before":
            raise Unavailable("Stripe is unavailable: Timeout")
        if fault == "429":
            self.rate_limited.append(request)
            raise StripeRateLimited("Stripe is rate limiting this account (rate_limit).")
        self.requests.append(request)
        intent_id = f"pi_{len(self.intents) + 1}"
        status = {
            "pm_ok": "succeeded",
            "pm_decline": "requires_payment_method",
            "pm_auth": "requires_action",
        }.get(request.payment_method_id, "succeeded")
        decline_code = "generic_decline"
        if request.payment_method_id.startswith("pm_decline_"):
            # pm_decline_<code>: declined with that issuer decline code (e.g. stolen_card)
            status = "requires_payment_method"
            decline_code = request.payment_method_id.removeprefix("pm_decline_")
        too_small = request.amount < _stripe_minimum(request.currency)
        if too_small:
            status = "requires_payment_method"
        intent: dict[str, Any] = {
            "id": intent_id,
            "status": status,
            "amount": request.amount,
            "amount_received": request.amount if status == "succeeded" else 0,
            "currency": request.currency,
            # Stripe shows both on every PaymentIntent: null without a fee, and null for one
            # the account made itself (ours, on a connected account, name our application).
            "application_fee_amount": request.application_fee_amount or None,
            "application": "ca_platform" if request.stripe_account_id else None,
            "latest_charge": f"ch_{len(self.intents) + 1}" if status == "succeeded" else None,
            "metadata": dict(request.metadata),
        }
        if too_small:  # Stripe refuses charges under the currency's minimum, card or not
            intent["last_payment_error"] = {
                "code": "amount_too_small",
                "decline_code": None,
                "message": "Amount must be at least the currency's minimum charge.",
            }
        elif status == "requires_payment_method":
            intent["last_payment_error"] = {
                "code": "card_declined",
                "decline_code": decline_code,
                "message": "Your card was declined.",
            }
        if getattr(request, "on_session", False) and status == "requires_action":
            intent["client_secret"] = f"{intent_id}_secret_fake"
        self.intents[intent_id] = intent
        if fault == "after":
            raise Unavailable("Stripe is unavailable: the answer was lost")
        if "client_secret" in intent:
            from chalicelib.adapters.stripe.payments import IntentOutcome

            return IntentOutcome(
                "requires_action", intent_id, None, None, None, intent["client_secret"]
            )
        return outcome_from_intent(intent)

    def retrieve_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        self._check_access("retrieve_intent", stripe_account_id)
        if intent_id not in self.intents:
            raise NotFound(f"The Stripe account has no PaymentIntent {intent_id}.")
        return dict(self.intents[intent_id])

    def find_intents_by_metadata(
        self, key: str, value: str, stripe_account_id: str | None
    ) -> list[dict[str, Any]]:
        self._check_access("find_intents_by_metadata", stripe_account_id)
        return [dict(i) for i in self.intents.values() if i["metadata"].get(key) == value]

    def cancel_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        from chalicelib.domain.errors import InvalidRequest, Unavailable

        self._check_access("cancel_intent", stripe_account_id)
        if self._fault() == "before":
            raise Unavailable("Stripe is unavailable: Timeout")
        intent = self.intents[intent_id]
        if intent["status"] in ("succeeded", "canceled"):
            raise InvalidRequest(f"PaymentIntent {intent_id} is {intent['status']}.")
        intent["status"] = "canceled"
        return dict(intent)

    def confirm_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        """Stripe's server-side confirmation after handleCardAction: an intent the customer
        authenticated (`requires_confirmation`) succeeds; any other is answered as it is."""
        self._check_access("confirm_intent", stripe_account_id)
        intent = self.intents[intent_id]
        if intent["status"] == "requires_confirmation":
            intent.update(
                status="succeeded",
                amount_received=intent["amount"],
                latest_charge=f"ch_{intent_id}",
            )
        return dict(intent)

    def handle_card_action(self, intent_id: str) -> None:
        """The customer authenticates in Stripe.js (manual confirmation: the server confirms)."""
        intent = self.intents[intent_id]
        if intent["status"] == "requires_action":
            intent["status"] = "requires_confirmation"

    def complete_authentication(self, intent_id: str) -> dict[str, Any]:
        """The customer authenticates an intent that waited for it (Stripe's hosted page):
        it succeeds, unless it was canceled."""
        intent = self.intents[intent_id]
        if intent["status"] == "requires_action":
            intent.update(
                status="succeeded",
                amount_received=intent["amount"],
                latest_charge=f"ch_{intent_id}",
            )
        return dict(intent)

    def refund(
        self,
        payment_intent_id: str,
        amount: int,
        stripe_account_id: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> Any:
        """Honours the idempotency key like Stripe: the same key answers the same refund."""
        from chalicelib.adapters.stripe.payments import RefundResult
        from chalicelib.domain.errors import InvalidRequest, Unavailable

        self._check_access("refund", stripe_account_id)
        fault = self._fault()
        if fault == "before":
            raise Unavailable("Stripe is unavailable: Timeout")
        existing = next((r for r in self.refunds if r["key"] == idempotency_key), None)
        if existing is None:
            intent = self.intents.get(payment_intent_id)
            refunded = sum(r["amount"] for r in self.refunds if r["intent"] == payment_intent_id)
            if intent is not None and refunded + amount > intent["amount_received"]:
                raise InvalidRequest("Stripe refused the refund: more than the charge.")
            existing = {
                "id": f"re_{len(self.refunds) + 1}",
                "amount": amount,
                "intent": payment_intent_id,
                "account": stripe_account_id,
                "key": idempotency_key,
                "status": "succeeded",
                "metadata": dict(metadata),
            }
            self.refunds.append(existing)
        if fault == "after":
            raise Unavailable("Stripe is unavailable: the answer was lost")
        return RefundResult(existing["id"], existing["amount"], existing["status"])

    def find_refund(
        self, payment_intent_id: str, refund_id: str, amount: int, stripe_account_id: str | None
    ) -> Any:
        from chalicelib.adapters.stripe.payments import RefundResult

        self._check_access("find_refund", stripe_account_id)
        for refund in self.refunds:
            if (
                refund["intent"] == payment_intent_id
                and refund["metadata"].get("refund_id") == refund_id
                and refund["amount"] == amount
            ):
                return RefundResult(refund["id"], refund["amount"], refund["status"])
        return None

    def charges_for(self, subscription_id: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.intents.values()
            if i["metadata"].get("subscription_id") == subscription_id
        ]


# --- reads the services take besides the unit of work -------------------------------------------
class FakeStripeBudget:
    """The scheduled work's Stripe budget: `tokens` calls per account, then no slot (None:
    unlimited). Records the accounts it granted and the 429s it was told about."""

    def __init__(
        self, tokens: int | None = None, spacing: float = 0.0, next_slot_in: float = 0.0
    ) -> None:
        self.tokens = tokens
        self.spacing = spacing
        self.next_slot_in = next_slot_in  # what `retry_after` answers
        self.granted: list[str] = []
        self.refused: list[str] = []
        self.sent: list[str] = []  # slots waited for, right before a Stripe request
        self.rate_limited_accounts: list[str] = []

    def acquire(self, account: str) -> Callable[[], None] | None:
        if self.tokens is not None and self.granted.count(account) >= self.tokens:
            self.refused.append(account)
            return None
        self.granted.append(account)
        return lambda: self.sent.append(account)

    def rate_limited(self, account: str) -> None:
        self.rate_limited_accounts.append(account)

    def retry_after(self, account: str) -> float:
        return self.next_slot_in

    def spacing_seconds(self) -> float:
        return self.spacing


class InMemoryDirectory:
    """Communities, plans, profiles and cards, as the read ports of the services see them."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.communities: dict[str, Any] = {}
        self.plans: dict[Key, Any] = {}
        self.profiles: dict[Key, Any] = {}

    # CommunityReader
    def get(self, community_id: str) -> Any:
        return self.communities[community_id]

    # BillingReader
    def billing_context(
        self,
        community_id: str,
        profile_id: str,
        payment_method_id: str | None,
        plan_ids: Sequence[str] = (),
    ) -> Any:
        from chalicelib.adapters.dynamodb.billing_context import BillingContext

        profile = self.profile(community_id, profile_id)
        card = self._store.cards.get((community_id, payment_method_id or ""))
        return BillingContext(
            community=self.communities[community_id],
            community_disconnected=community_id in self._store.deauthorized,
            billed=profile,
            card=card,
            plans={
                plan_id: self.plans[(community_id, plan_id)]
                for plan_id in plan_ids
                if (community_id, plan_id) in self.plans
            },
        )

    def profile(self, community_id: str, profile_id: str) -> Any:
        found = self.profiles.get((community_id, profile_id))
        if found is None:
            raise NotFound(f"Profile {profile_id} not found.")
        credit = {
            currency: amount
            for (cid, pid, currency), amount in self._store.credit.items()
            if (cid, pid) == (community_id, profile_id)
        }
        return replace(found, credit_balances=credit)


class PlanFinder:
    def __init__(self, directory: InMemoryDirectory) -> None:
        self._directory = directory

    def find(self, community_id: str, plan_id: str) -> Any:
        return self._directory.plans.get((community_id, plan_id))


class ProfileReader:
    def __init__(self, directory: InMemoryDirectory) -> None:
        self._directory = directory

    def find(self, community_id: str, profile_id: str) -> Any:
        try:
            return self._directory.profile(community_id, profile_id)
        except NotFound:
            return None

    def get(self, community_id: str, profile_id: str) -> Any:
        return self._directory.profile(community_id, profile_id)

    def get_many(self, community_id: str, profile_ids: list[str]) -> dict[str, Any]:
        found = {pid: self.find(community_id, pid) for pid in profile_ids}
        return {pid: profile for pid, profile in found.items() if profile is not None}


class SubscriptionReads:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def find(self, community_id: str, subscription_id: str) -> Subscription | None:
        return self._store.subscriptions.get((community_id, subscription_id))

    def get(self, community_id: str, subscription_id: str) -> Subscription:
        found = self.find(community_id, subscription_id)
        if found is None:
            raise NotFound(f"Subscription {subscription_id} not found.")
        return found

    def list(self, community_id: str, *, limit: int, cursor: str | None, **filters: Any) -> Any:
        subs = [s for (cid, _), s in self._store.subscriptions.items() if cid == community_id]
        return subs[:limit], len(subs) > limit, None


class AuditReads:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def list(self, community_id: str, subscription_id: str, limit: int, cursor: str | None) -> Any:
        return self._store.audit.get((community_id, subscription_id), [])[:limit]


class CardChecks:
    """Stripe's PaymentMethod lookup and the snapshot store for `services.cards.Cards`."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.on_stripe: dict[str, str] = {}  # payment method -> customer

    def retrieve(self, account: str | None, payment_method_id: str) -> Any:
        from chalicelib.adapters.stripe.customers import Card

        customer = self.on_stripe.get(payment_method_id)
        if customer is None:
            raise NotFound(f"No such payment method {payment_method_id}.")
        return Card(payment_method_id, "card", "visa", "4242", 12, 2034, customer)

    def find(self, community_id: str, payment_method_id: str) -> Mapping[str, Any] | None:
        return self._store.cards.get((community_id, payment_method_id))

    def put(self, community_id: str, snapshot: dict[str, Any]) -> None:
        self._store.cards[(community_id, snapshot["id"])] = dict(snapshot)


class InMemoryPaymentLinkStore:
    """Pay-now links as adapters/dynamodb/payment_links.py keeps them: by token hash, one
    current link per subscription, a resend mark per link, request counts per minute."""

    def __init__(self) -> None:
        self.links: dict[str, Any] = {}
        self.current: dict[Key, str] = {}
        self.resent: set[str] = set()
        self.hits: dict[tuple[str, str], int] = {}

    def replace_current(self, link: Any) -> None:
        assert link.token_hash not in self.links
        self.links[link.token_hash] = link
        self.current[(link.community_id, link.subscription_id)] = link.token_hash

    def find(self, token_hash: str) -> tuple[Any, bool] | None:
        link = self.links.get(token_hash)
        if link is None:
            return None
        return link, self.current.get((link.community_id, link.subscription_id)) == token_hash

    def claim_resend(self, token_hash: str, now: datetime) -> bool:
        if token_hash not in self.links or token_hash in self.resent:
            return False
        self.resent.add(token_hash)
        return True

    def release_resend(self, token_hash: str, claimed_at: datetime) -> None:
        self.resent.discard(token_hash)

    def count_request(self, token_hash: str, now: datetime) -> int:
        minute = now.strftime("%Y%m%d%H%M")
        self.hits[(token_hash, minute)] = self.hits.get((token_hash, minute), 0) + 1
        return self.hits[(token_hash, minute)]


class FakeCardSetup:
    """The pay page's card setup (services/payment_methods.py on Stripe): a SetupIntent per call;
    attaching a card puts it on the profile's customer (as Stripe would)."""

    def __init__(self, card_checks: CardChecks, directory: InMemoryDirectory) -> None:
        self._card_checks = card_checks
        self._directory = directory
        self.setup_intents: list[tuple[str, str]] = []

    def setup_intent(self, community_id: str, profile_id: str) -> str:
        self.setup_intents.append((community_id, profile_id))
        return f"seti_{len(self.setup_intents)}_secret_fake"

    def attach(self, community_id: str, profile_id: str, payment_method_id: str) -> Any:
        profile = self._directory.profile(community_id, profile_id)
        self._card_checks.on_stripe[payment_method_id] = profile.stripe_customer_id or ""
        return self._card_checks.retrieve(None, payment_method_id)
