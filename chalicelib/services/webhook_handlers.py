"""What each Stripe event type does, and where it belongs (which community).

The effects on payments and subscriptions are the payment service's own entry points
(services/payments.py, the same resolution code the API and the jobs use). They read through
`container.payments` and commit through `container.subscriptions.commit`; each handler hands
them an `_EventScope`, the container as seen while one event is applied:

- its commit carries the event record, first, in the same TransactWriteItems (EventTransaction):
  the de-duplication marker and the effect are written together or not at all;
- its payment reads only see payments on the event's Stripe account (the platform's for an
  event without `account`), so a Connect event can never touch another account's payment.

Routing: a Connect event carries `account`; it belongs to the community whose connected account
that is (one gsi2 Query), else it is ignored. A platform-account event is routed by the ids our
PaymentIntents carry in their metadata (charges copy them), or by the PaymentIntent id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from chalicelib.domain.webhook_events import Outcome, WebhookEvent
from chalicelib.services.webhooks import Effect, EventHandler, EventTransaction, WebhookService

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.payments import StoredPayment
    from chalicelib.bootstrap import Container

DisputeStatus = Literal["open", "won", "lost"]
CLOSED_DISPUTE: dict[str, DisputeStatus] = {"won": "won", "warning_closed": "won", "lost": "lost"}


@dataclass(frozen=True)
class Route:
    """Where an event belongs: a community, or nowhere (with the reason)."""

    community_id: str | None
    reason: str | None = None


def metadata_ids(obj: Mapping[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return {}
    return {k: v for k, v in metadata.items() if isinstance(v, str) and v}


class WebhookHandlers:
    def __init__(self, container: Container) -> None:
        self._container = container

    def registry(self) -> dict[str, EventHandler]:
        return {
            "payment_intent.succeeded": self.payment_intent,
            "payment_intent.payment_failed": self.payment_intent,
            "charge.refunded": self.charge_refunded,
            "charge.dispute.created": self.dispute_created,
            "charge.dispute.closed": self.dispute_closed,
            "payment_method.updated": self.payment_method,
            "payment_method.automatically_updated": self.payment_method,
            "payment_method.detached": self.payment_method,
            "account.application.deauthorized": self.deauthorized,
        }

    # --- payment outcomes -------------------------------------------------------------------
    def payment_intent(self, event: WebhookEvent, tx: EventTransaction) -> Effect:
        """Resolve the pending payment our metadata names, with the shared resolution code
        (services/charging.resolve, as the API and the jobs do): forward-only, so a late or
        repeated outcome changes nothing. Costs one BatchGetItem (payment + subscription), one
        TransactWriteItems (effect + event record) and no Stripe call."""
        from chalicelib.adapters.dynamodb.webhook_events import payment_with_subscription
        from chalicelib.adapters.stripe.payments import outcome_from_intent
        from chalicelib.domain.errors import NotFound
        from chalicelib.services.charging import resolve

        intent = event.data_object
        ids = metadata_ids(intent)
        community_id, payment_id = ids.get("community_id"), ids.get("payment_id")
        if not community_id or not payment_id:
            return Effect(Outcome.ignored("the PaymentIntent names no payment of ours"))
        outcome = outcome_from_intent(intent)
        if outcome.status == "pending":
            status = intent.get("status")
            return Effect(Outcome.ignored(f"the PaymentIntent is {status}", community_id))
        known = None
        if ids.get("subscription_id"):
            # The fast path: payment and subscription in one read, then one transaction.
            known = payment_with_subscription(
                self._container.dynamodb,
                self._container.settings.table_name,
                community_id,
                payment_id,
                ids["subscription_id"],
            )
            if known is not None and known[0].payment.stripe.account_id != event.account:
                return Effect(Outcome.ignored(_other_account(known[0], event.account)))
        scope = self._scope(event, tx, community_id)
        try:
            resolve(
                scope.as_container(),
                community_id,
                payment_id,
                outcome,
                actor="webhook",
                known=known,
            )
        except NotFound:
            reason = scope.refused or f"no payment {payment_id} in community {community_id}"
            return Effect(Outcome.ignored(reason, community_id))
        return Effect(Outcome.processed(community_id))

    # --- refunds and disputes ----------------------------------------------------------------
    def charge_refunded(self, event: WebhookEvent, tx: EventTransaction) -> Effect:
        from chalicelib.services.payments import record_refunded_total

        charge = event.data_object
        refunded = charge.get("amount_refunded")
        if not isinstance(refunded, int) or isinstance(refunded, bool) or refunded < 0:
            return Effect(Outcome.failed("charge.amount_refunded is not an amount"))
        found = self._payment_of(event, charge)
        if isinstance(found, Route):
            return Effect(Outcome.ignored(found.reason or "not ours"))
        community_id, intent_id = found.payment.community_id, _intent_of(found, charge)
        scope = self._scope(event, tx, community_id)
        record_refunded_total(scope.as_container(), community_id, intent_id, refunded)
        return Effect(Outcome.processed(community_id))

    def dispute_created(self, event: WebhookEvent, tx: EventTransaction) -> Effect:
        return self._dispute(event, tx, "open")

    def dispute_closed(self, event: WebhookEvent, tx: EventTransaction) -> Effect:
        stripe_status = str(event.data_object.get("status"))
        status = CLOSED_DISPUTE.get(stripe_status)
        if status is None:
            return Effect(Outcome.failed(f"a closed dispute in status {stripe_status}"))
        return self._dispute(event, tx, status)

    def _dispute(self, event: WebhookEvent, tx: EventTransaction, status: DisputeStatus) -> Effect:
        from chalicelib.services.payments import record_dispute

        dispute = event.data_object
        found = self._payment_of(event, dispute)
        if isinstance(found, Route):
            return Effect(Outcome.ignored(found.reason or "not ours"))
        payment = found.payment
        community_id, intent_id = payment.community_id, _intent_of(found, dispute)
        if status == "open" and payment.dispute_status in ("won", "lost"):
            # One dispute per charge: a late or replayed `created` never reopens a closed one.
            return Effect(Outcome.processed(community_id))
        scope = self._scope(event, tx, community_id)
        if status != "open" and payment.dispute_status is None:
            # `closed` overtook `created`: open it first (forward-only, safe to repeat) so the
            # close applies; the close commits with the event record.
            record_dispute(self._plain_scope(event).as_container(), community_id, intent_id, "open")
        record_dispute(scope.as_container(), community_id, intent_id, status)
        return Effect(Outcome.processed(community_id))

    # --- cards ------------------------------------------------------------------------------
    def payment_method(self, event: WebhookEvent, tx: EventTransaction) -> Effect:
        """Refresh the card snapshot our subscriptions show and charge; flag a detached card."""
        from chalicelib.adapters.dynamodb.card_snapshots import CardSnapshots

        method = event.data_object
        method_id = _id_of(method.get("id"))
        if method_id is None:
            return Effect(Outcome.failed("the payment method has no id"))
        route = self._route_card(event, method)
        if route.community_id is None:
            return Effect(Outcome.ignored(route.reason or "not ours"))
        table = self._container.settings.table_name
        snapshot = CardSnapshots(self._container.dynamodb, table).find(
            route.community_id, method_id
        )
        if snapshot is None:
            return Effect(Outcome.ignored("no subscription of ours uses this card"))
        if int(snapshot.get("card_event_created") or 0) >= event.created:
            return Effect(Outcome.processed(route.community_id))  # newer news already applied
        changes: dict[str, Any] = {}
        if event.type == "payment_method.detached":
            changes["detached_at"] = self._container.clock.now().isoformat()
        else:
            card = method.get("card")
            card = card if isinstance(card, Mapping) else {}
            changes.update(
                {k: card.get(k) for k in ("brand", "last4", "exp_month", "exp_year") if k in card}
            )
        entry = card_update_entry(table, route.community_id, method_id, changes, event.created)
        return Effect(Outcome.processed(route.community_id), [entry])

    def _route_card(self, event: WebhookEvent, method: Mapping[str, Any]) -> Route:
        if event.account:
            return self.route_by_account(event.account)
        previous = event.payload.get("data", {}).get("previous_attributes") or {}
        customer = _id_of(method.get("customer")) or _id_of(previous.get("customer"))
        if customer is None:
            return Route(None, "the card belongs to no customer")
        from chalicelib.adapters.stripe.client import stripe_client
        from chalicelib.adapters.stripe.events import customer_metadata

        box = self._container
        client = stripe_client(box.settings, box.secrets.get().stripe_secret_key)
        community_id = customer_metadata(client, customer, None).get("community_id")
        if not community_id:
            return Route(None, f"customer {customer} is not one of ours")
        return Route(community_id)

    # --- Connect ------------------------------------------------------------------------------
    def deauthorized(self, event: WebhookEvent, tx: EventTransaction) -> Effect:
        """The community disconnected our platform: flag it so its charges are refused."""
        from chalicelib.adapters.dynamodb.communities import community_key
        from chalicelib.adapters.dynamodb.items import to_value

        if not event.account:
            return Effect(Outcome.ignored("a deauthorization names no account"))
        route = self.route_by_account(event.account)
        if route.community_id is None:
            return Effect(Outcome.ignored(route.reason or "not ours"))
        entry = {
            "Update": {
                "TableName": self._container.settings.table_name,
                "Key": community_key(route.community_id),
                "UpdateExpression": "SET stripe_deauthorized_at = :at",
                # Only while that account is still the community's (a reconnect wins).
                "ConditionExpression": "stripe_account_id = :account",
                "ExpressionAttributeValues": {
                    ":at": to_value(self._container.clock.now().isoformat()),
                    ":account": to_value(event.account),
                },
            }
        }
        return Effect(Outcome.processed(route.community_id), [entry])

    # --- routing ----------------------------------------------------------------------------
    def route_by_account(self, account: str) -> Route:
        community = self._container.communities.find_by_stripe_account(account)
        if community is None:
            return Route(None, f"no community has connected account {account}")
        return Route(community.id)

    def _payment_of(self, event: WebhookEvent, obj: Mapping[str, Any]) -> StoredPayment | Route:
        """Our payment for a charge or dispute: by its PaymentIntent, else by metadata ids."""
        from chalicelib.services.payments import find_payment_for_intent

        community_id = None
        if event.account:
            route = self.route_by_account(event.account)
            if route.community_id is None:
                return route
            community_id = route.community_id
        intent = {"id": _id_of(obj.get("payment_intent")), "metadata": metadata_ids(obj)}
        payments = self._plain_scope(event).as_container()
        found = find_payment_for_intent(payments, intent, community_id)
        if found is None:
            return Route(None, "no payment of ours matches")
        return found

    def _scope(self, event: WebhookEvent, tx: EventTransaction, community_id: str) -> _EventScope:
        return _EventScope(self._container, event.account, _CommitWithEvent(tx, community_id))

    def _plain_scope(self, event: WebhookEvent) -> _EventScope:
        return _EventScope(self._container, event.account, None)


def card_update_entry(
    table: str, community_id: str, method_id: str, changes: Mapping[str, Any], created: int
) -> dict[str, Any]:
    """SET `changes` on a card snapshot, unless a card event created later was applied."""
    from chalicelib.adapters.dynamodb.card_snapshots import card_key
    from chalicelib.adapters.dynamodb.items import to_value

    fields = {**changes, "card_event_created": created}
    names = {f"#f{i}": name for i, name in enumerate(fields)}
    values = {f":v{i}": to_value(value) for i, value in enumerate(fields.values())}
    values[":created"] = to_value(created)
    return {
        "Update": {
            "TableName": table,
            "Key": card_key(community_id, method_id),
            "UpdateExpression": "SET " + ", ".join(f"{n} = :v{i}" for i, n in enumerate(names)),
            "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists("
            "card_event_created) OR card_event_created < :created)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _intent_of(found: StoredPayment, obj: Mapping[str, Any]) -> str:
    intent_id = found.payment.stripe.payment_intent_id or _id_of(obj.get("payment_intent"))
    assert intent_id is not None  # found by it, or the payment records it
    return intent_id


def _id_of(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _other_account(stored: StoredPayment, account: str | None) -> str:
    return (
        f"payment {stored.payment.id} is on Stripe account "
        f"{stored.payment.stripe.account_id or 'platform'}, the event on {account or 'platform'}"
    )


class _EventScope:
    """The container as the payment service sees it while one event is applied."""

    def __init__(
        self, base: Container, account: str | None, commit: _CommitWithEvent | None
    ) -> None:
        self._base = base
        self.refused: str | None = None
        self.payments = _PaymentsOfAccount(base.payments, account, self)
        self.subscriptions = base.subscriptions if commit is None else _Subscriptions(base, commit)

    def as_container(self) -> Container:
        return cast("Container", self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


class _CommitWithEvent:
    def __init__(self, tx: EventTransaction, community_id: str) -> None:
        self._tx = tx
        self._community_id = community_id

    def __call__(self, entries: list[dict[str, Any]]) -> None:
        self._tx.commit(entries, self._community_id)


class _Subscriptions:
    """The subscription repository whose `commit` also writes the event record."""

    def __init__(self, base: Container, commit: _CommitWithEvent) -> None:
        self._base = base.subscriptions
        self.commit = commit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


class _PaymentsOfAccount:
    """The payment repository, showing only payments on one Stripe account."""

    def __init__(self, base: Any, account: str | None, scope: _EventScope) -> None:
        self._base = base
        self._account = account
        self._scope = scope

    def _mine(self, stored: StoredPayment | None) -> StoredPayment | None:
        if stored is None or stored.payment.stripe.account_id == self._account:
            return stored
        self._scope.refused = _other_account(stored, self._account)
        return None

    def find(self, community_id: str, payment_id: str) -> StoredPayment | None:
        return self._mine(self._base.find(community_id, payment_id))

    def get(self, community_id: str, payment_id: str) -> StoredPayment:
        from chalicelib.domain.errors import NotFound

        found = self.find(community_id, payment_id)
        if found is None:
            raise NotFound(f"Payment {payment_id} not found.")
        return found

    def find_by_payment_intent(
        self, payment_intent_id: str, community_id: str | None = None
    ) -> StoredPayment | None:
        return self._mine(self._base.find_by_payment_intent(payment_intent_id, community_id))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


def build_webhook_service(container: Container) -> WebhookService:
    return WebhookService(
        store=container.webhook_events,
        dynamodb=container.dynamodb,
        handlers=WebhookHandlers(container).registry(),
        clock=container.clock,
        secrets=lambda: container.secrets.get().webhook_secrets,
    )
