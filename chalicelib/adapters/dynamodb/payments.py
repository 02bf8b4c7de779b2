"""Payment repository: the ledger (payments and their refunds).

Item layout:
- payment   pk=`C#<cid>#PAY#<payment_id>`  sk=`PAY`  (whole-item Put conditional on `revision`)
            attrs: type="payment", revision (optimistic lock of this item), the payment fields
            (lines, totals, billed_to, payment_method, stripe refs, failure, period, charge_key),
            billed_profile_id, profile_ids (billed profile + every line's profile, for filters)
            gsi1pk=`C#<cid>#PAYS`               gsi1sk=`<created_at µs>#<payment_id>`
                (list of the community, newest first; the 30-day report is a range on gsi1sk)
            gsi2pk=`C#<cid>#SUB#<sid>#PAYS`     gsi2sk=`<created_at µs>#<payment_id>`
                (payments of one subscription: billing history)
            gsi3pk=`PI#<payment_intent_id>`     gsi3sk=`C#<cid>#PAY#<payment_id>`
                (only once the PaymentIntent is known: webhooks find the payment by intent)
            due_pk/due_at/due_group=pending_payment while `pending` (created_at + 5 min), so the
                recovery pass finds payments left pending by a crash; removed on resolution.
            due_group=pending_refund while refunds wait for Stripe (pending_refunds > 0, at
                refund_pending_since + 5 min): the recovery pass settles them.
- refund    pk=`C#<cid>#PAY#<payment_id>`  sk=`REF#<refund_id>`
            attrs: type="refund", id, payment_id, amount, status, reason, stripe_refund_id,
            initiated_by, created_at

Every write is a TransactWriteItems entry built here and committed by the service together
with the subscription change, its audit event and its charge key.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.dynamodb.codec import format_time, pack_json, parse_time, unpack_json
from chalicelib.adapters.dynamodb.cursors import CursorCodec, Page, query_page
from chalicelib.adapters.dynamodb.due_index import due_attributes
from chalicelib.adapters.dynamodb.items import from_item, to_item, to_value
from chalicelib.domain.billing.lines import PaymentLine
from chalicelib.domain.errors import NotFound
from chalicelib.domain.payment_reports import PaymentReport
from chalicelib.domain.payments import (
    PENDING_RECOVERY_DELAY,
    SETTLED_FOR,
    BilledTo,
    Payment,
    PaymentFailure,
    PaymentMethodSummary,
    Refund,
    StripeRefs,
)
from chalicelib.domain.periods import Period
from chalicelib.domain.subscriptions import Subscription


def payment_key(community_id: str, payment_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"C#{community_id}#PAY#{payment_id}"}, "sk": {"S": "PAY"}}


def _sortable(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _period_to_dict(period: Period | None) -> dict[str, str] | None:
    if period is None:
        return None
    return {"start": format_time(period.start), "end": format_time(period.end)}


def _exact_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def refund_from_item(item: dict[str, Any]) -> Refund:
    return Refund(
        id=item["id"],
        payment_id=item["payment_id"],
        amount=int(item["amount"]),
        status=item["status"],
        reason=item.get("reason"),
        created_at=parse_time(item["created_at"]),
        stripe_refund_id=item.get("stripe_refund_id"),
        initiated_by=item.get("initiated_by", "api"),
    )


def payment_attributes(payment: Payment, revision: int, shards: int) -> dict[str, Any]:
    created = _sortable(payment.created_at)
    profile_ids = sorted(
        {payment.billed_to.profile_id} | {ln.profile_id for ln in payment.lines if ln.profile_id}
    )
    attributes: dict[str, Any] = {
        "type": "payment",
        "revision": revision,
        "id": payment.id,
        "subscription_id": payment.subscription_id,
        "community_id": payment.community_id,
        "kind": payment.kind,
        "status": payment.status,
        "currency": payment.currency,
        # One JSON string (compressed when large: ~2,000 lines when 1,000 members are added).
        "lines_json": pack_json(
            [
                {
                    "kind": ln.kind,
                    "description": ln.description,
                    "plan_name": ln.plan_name,
                    "profile_id": ln.profile_id,
                    "unit_amount": ln.unit_amount,
                    "quantity": ln.quantity,
                    "amount": ln.amount,
                }
                for ln in payment.lines
            ]
        ),
        "subtotal": payment.subtotal,
        "credit_applied": payment.credit_applied,
        "total": payment.total,
        "amount_paid": payment.amount_paid,
        "amount_refunded": payment.amount_refunded,
        "amount_refund_pending": payment.amount_refund_pending,
        "pending_refunds": payment.pending_refunds,
        "refund_pending_since": (
            _exact_time(payment.refund_pending_since) if payment.refund_pending_since else None
        ),
        "application_fee_amount": payment.application_fee_amount,
        "billed_to": {
            "profile_id": payment.billed_to.profile_id,
            "name": payment.billed_to.name,
            "email": payment.billed_to.email,
        },
        "billed_profile_id": payment.billed_to.profile_id,
        "profile_ids": profile_ids,
        "payment_method": (
            {
                "type": payment.payment_method.type,
                "brand": payment.payment_method.brand,
                "last4": payment.payment_method.last4,
            }
            if payment.payment_method
            else None
        ),
        "stripe": {
            "account_id": payment.stripe.account_id,
            "payment_intent_id": payment.stripe.payment_intent_id,
            "charge_id": payment.stripe.charge_id,
        },
        "failure": (
            {
                "code": payment.failure.code,
                "decline_code": payment.failure.decline_code,
                "message": payment.failure.message,
            }
            if payment.failure
            else None
        ),
        "period": _period_to_dict(payment.period),
        "period_exact": (
            {"start": _exact_time(payment.period.start), "end": _exact_time(payment.period.end)}
            if payment.period
            else None
        ),
        "charge_key": payment.charge_key,
        "created_at": format_time(payment.created_at),
        "updated_at": format_time(payment.updated_at),
        "created_exact": _exact_time(payment.created_at),
        "updated_exact": _exact_time(payment.updated_at),
        "dispute_status": payment.dispute_status,
        "gsi1pk": f"C#{payment.community_id}#PAYS",
        "gsi1sk": f"{created}#{payment.id}",
        "gsi2pk": f"C#{payment.community_id}#SUB#{payment.subscription_id}#PAYS",
        "gsi2sk": f"{created}#{payment.id}",
    }
    if payment.stripe.payment_intent_id:
        attributes["gsi3pk"] = f"PI#{payment.stripe.payment_intent_id}"
        attributes["gsi3sk"] = f"C#{payment.community_id}#PAY#{payment.id}"
    if payment.status == "pending":
        attributes.update(
            due_attributes(
                payment.id,
                "pending_payment",
                payment.created_at + PENDING_RECOVERY_DELAY,
                shards,
            )
        )
    elif payment.pending_refunds > 0 and payment.refund_pending_since is not None:
        attributes.update(
            due_attributes(
                payment.id,
                "pending_refund",
                payment.refund_pending_since + PENDING_RECOVERY_DELAY,
                shards,
            )
        )
    return attributes


def payment_from_item(item: dict[str, Any]) -> Payment:
    lines = tuple(
        PaymentLine(
            kind=ln["kind"],
            description=ln["description"],
            plan_name=ln.get("plan_name"),
            profile_id=ln.get("profile_id"),
            unit_amount=int(ln["unit_amount"]),
            quantity=int(ln["quantity"]),
            amount=int(ln["amount"]),
        )
        for ln in (unpack_json(item["lines_json"]) if "lines_json" in item else item["lines"])
    )
    billed = item["billed_to"]
    method = item.get("payment_method")
    stripe = item.get("stripe") or {}
    failure = item.get("failure")
    period_exact = item.get("period_exact")
    return Payment(
        id=item["id"],
        subscription_id=item["subscription_id"],
        community_id=item["community_id"],
        kind=item["kind"],
        status=item["status"],
        currency=item["currency"],
        lines=lines,
        subtotal=int(item["subtotal"]),
        credit_applied=int(item["credit_applied"]),
        total=int(item["total"]),
        amount_paid=int(item["amount_paid"]),
        amount_refunded=int(item["amount_refunded"]),
        application_fee_amount=int(item["application_fee_amount"]),
        billed_to=BilledTo(billed["profile_id"], billed["name"], billed.get("email")),
        payment_method=(
            PaymentMethodSummary(
                method.get("type", "card"), method.get("brand"), method.get("last4")
            )
            if method
            else None
        ),
        stripe=StripeRefs(
            stripe.get("account_id"), stripe.get("payment_intent_id"), stripe.get("charge_id")
        ),
        failure=(
            PaymentFailure(failure["code"], failure.get("decline_code"), failure["message"])
            if failure
            else None
        ),
        period=(
            Period(parse_time(period_exact["start"]), parse_time(period_exact["end"]))
            if period_exact
            else None
        ),
        charge_key=item["charge_key"],
        created_at=parse_time(item["created_exact"]),
        updated_at=parse_time(item["updated_exact"]),
        dispute_status=item.get("dispute_status"),
        amount_refund_pending=int(item.get("amount_refund_pending") or 0),
        pending_refunds=int(item.get("pending_refunds") or 0),
        refund_pending_since=(
            parse_time(item["refund_pending_since"]) if item.get("refund_pending_since") else None
        ),
        revision=int(item["revision"]),
    )


def payment_with_subscription_of(
    payment_item: dict[str, Any] | None,
    subscription_item: dict[str, Any] | None,
    subscription_id: str,
) -> tuple[Payment, Subscription] | None:
    """A payment and its subscription from their items (wire format); None unless both
    exist and belong together."""
    from chalicelib.adapters.dynamodb.subscriptions import SubscriptionRepository

    if payment_item is None or subscription_item is None:
        return None
    payment = payment_from_item(from_item(payment_item))
    if payment.subscription_id != subscription_id:
        return None
    return payment, SubscriptionRepository.from_item(from_item(subscription_item))


class PaymentRepository:
    def __init__(self, client: Any, table: str, cursors: CursorCodec, due_shards: int) -> None:
        self._client = client
        self._table = table
        self._cursors = cursors
        self._shards = due_shards

    @property
    def table(self) -> str:
        return self._table

    # --- transaction entries (committed by the unit of work) --------------------------------
    def create_entry(self, payment: Payment) -> dict[str, Any]:
        item = payment_attributes(payment, 1, self._shards)
        return {
            "Put": {
                "TableName": self._table,
                "Item": {**payment_key(payment.community_id, payment.id), **to_item(item)},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def save_entry(self, payment: Payment) -> dict[str, Any]:
        """Replace the payment, conditional on the revision it was read at."""
        item = payment_attributes(payment, payment.revision + 1, self._shards)
        return {
            "Put": {
                "TableName": self._table,
                "Item": {**payment_key(payment.community_id, payment.id), **to_item(item)},
                "ConditionExpression": "revision = :revision",
                "ExpressionAttributeValues": {":revision": to_value(payment.revision)},
            }
        }

    def settled_checks(self, report: PaymentReport) -> builtins.list[dict[str, Any]]:
        """ConditionChecks that hold while `report` changes nothing, as the domain's
        `PaymentReport.changes_nothing` says: the payment settled (`SETTLED_FOR`), that
        PaymentIntent recorded (its gsi3pk), charged on that account (none: the platform's);
        its subscription (when named) existing and not waiting for it. Each refused check
        returns its item (`ALL_OLD`): what `payment_with_subscription` reads."""
        community_id, payment_id = report.community_id, report.payment_id
        account_id = report.account_id
        statuses = SETTLED_FOR[report.outcome]
        names = ", ".join(f":s{n}" for n in range(len(statuses)))
        values = {f":s{n}": to_value(status) for n, status in enumerate(statuses)}
        values[":intent"] = to_value(f"PI#{report.payment_intent_id}")
        if account_id:
            on_account = "#stripe.#account = :account"
            values[":account"] = to_value(account_id)
        else:
            on_account = "(attribute_not_exists(#stripe.#account) OR #stripe.#account = :none)"
            values[":none"] = to_value(None)
        checks = [
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": payment_key(community_id, payment_id),
                    "ConditionExpression": (
                        f"#status IN ({names}) AND gsi3pk = :intent AND {on_account}"
                    ),
                    "ExpressionAttributeNames": {
                        "#status": "status",
                        "#stripe": "stripe",
                        "#account": "account_id",
                    },
                    "ExpressionAttributeValues": values,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        ]
        if report.subscription_id:
            from chalicelib.adapters.dynamodb.subscriptions import subscription_key

            checks.append(
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": subscription_key(community_id, report.subscription_id),
                        "ConditionExpression": (
                            "attribute_exists(pk) AND NOT pending_payment_id = :payment"
                        ),
                        "ExpressionAttributeValues": {":payment": to_value(payment_id)},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        return checks

    def refund_entry(self, community_id: str, refund: Refund, *, new: bool) -> dict[str, Any]:
        """A new refund record (never overwriting one), or its resolution (only while it is
        still pending: a refund settles once)."""
        item = {
            "pk": f"C#{community_id}#PAY#{refund.payment_id}",
            "sk": f"REF#{refund.id}",
            "type": "refund",
            "id": refund.id,
            "payment_id": refund.payment_id,
            "amount": refund.amount,
            "status": refund.status,
            "reason": refund.reason,
            "stripe_refund_id": refund.stripe_refund_id,
            "initiated_by": refund.initiated_by,
            "created_at": _exact_time(refund.created_at),
        }
        if new:
            condition = "attribute_not_exists(pk)"
            values: dict[str, Any] = {}
        else:
            condition = "#status = :pending"
            values = {":pending": to_value("pending")}
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": to_item(item),
            "ConditionExpression": condition,
        }
        if values:
            put["ExpressionAttributeNames"] = {"#status": "status"}
            put["ExpressionAttributeValues"] = values
        return {"Put": put}

    # --- reads ----------------------------------------------------------------------------
    def find_payment(self, community_id: str, payment_id: str) -> Payment | None:
        response = self._client.get_item(
            TableName=self._table, Key=payment_key(community_id, payment_id), ConsistentRead=True
        )
        item = response.get("Item")
        return payment_from_item(from_item(item)) if item else None

    def get_payment(self, community_id: str, payment_id: str) -> Payment:
        found = self.find_payment(community_id, payment_id)
        if found is None:
            raise NotFound(f"Payment {payment_id} not found.")
        return found

    def find_payment_by_intent(
        self, payment_intent_id: str, community_id: str | None = None
    ) -> Payment | None:
        """The payment charged by a PaymentIntent (gsi3), optionally only in one community."""
        response = self._client.query(
            TableName=self._table,
            IndexName="gsi3",
            KeyConditionExpression="gsi3pk = :pk",
            ExpressionAttributeValues={":pk": to_value(f"PI#{payment_intent_id}")},
            Limit=5,
        )
        for raw in response.get("Items", []):
            item = from_item(raw)
            if community_id is None or item.get("community_id") == community_id:
                # The index is eventually consistent: read the item itself.
                return self.find_payment(item["community_id"], item["id"])
        return None

    def payment_with_subscription(
        self, community_id: str, payment_id: str, subscription_id: str
    ) -> tuple[Payment, Subscription] | None:
        """A payment and its subscription in ONE consistent BatchGetItem (the webhook fast
        path: the PaymentIntent's metadata names both). None unless both exist and belong
        together."""
        from chalicelib.adapters.dynamodb.subscriptions import subscription_key

        keys = [
            payment_key(community_id, payment_id),
            subscription_key(community_id, subscription_id),
        ]
        request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        items: builtins.list[dict[str, Any]] = []
        while request:
            response = self._client.batch_get_item(RequestItems=request)
            items += response["Responses"].get(self._table, [])
            request = response.get("UnprocessedKeys") or {}
        by_pk = {item["pk"]["S"]: item for item in items}
        payment_item, subscription_item = (by_pk.get(key["pk"]["S"]) for key in keys)
        return payment_with_subscription_of(payment_item, subscription_item, subscription_id)

    def list(
        self,
        community_id: str,
        *,
        limit: int,
        cursor: str | None,
        subscription_id: str | None = None,
        profile_id: str | None = None,
        status: str | None = None,
        kind: str | None = None,
    ) -> tuple[builtins.list[Payment], bool, str | None]:
        filters: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if subscription_id:
            index, partition = "gsi2", f"C#{community_id}#SUB#{subscription_id}#PAYS"
        else:
            index, partition = "gsi1", f"C#{community_id}#PAYS"
        values[":pk"] = to_value(partition)
        if profile_id:
            filters.append("contains(profile_ids, :profile)")
            values[":profile"] = to_value(profile_id)
        if status:
            filters.append("#status = :status")
            names["#status"] = "status"
            values[":status"] = to_value(status)
        if kind:
            filters.append("#kind = :kind")
            names["#kind"] = "kind"
            values[":kind"] = to_value(kind)
        page: Page = query_page(
            self._client,
            self._table,
            self._cursors,
            scope=f"payments:{partition}:{profile_id}:{status}:{kind}",
            index=index,
            key_condition=f"{index}pk = :pk",
            values=values,
            names=names or None,
            filter_expression=" AND ".join(filters) or None,
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        return [payment_from_item(i) for i in page.items], page.has_more, page.next_cursor

    def for_subscription(self, community_id: str, subscription_id: str) -> builtins.list[Payment]:
        """Every payment of one subscription, newest first (billing history)."""
        payments: builtins.list[Payment] = []
        cursor: str | None = None
        while True:
            page, more, cursor = self.list(
                community_id, limit=100, cursor=cursor, subscription_id=subscription_id
            )
            payments += page
            if not more:
                return payments

    def created_since(self, community_id: str, since: datetime) -> builtins.list[Payment]:
        """Payments created at or after `since` (a gsi1 range Query, paginated)."""
        items: builtins.list[Payment] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk >= :since",
            "ExpressionAttributeValues": {
                ":pk": to_value(f"C#{community_id}#PAYS"),
                ":since": to_value(_sortable(since)),
            },
        }
        while True:
            response = self._client.query(**request)
            items += [payment_from_item(from_item(i)) for i in response.get("Items", [])]
            if not response.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def refunds(self, community_id: str, payment_id: str) -> builtins.list[Refund]:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": to_value(f"C#{community_id}#PAY#{payment_id}"),
                ":prefix": to_value("REF#"),
            },
            ConsistentRead=True,
        )
        return [refund_from_item(from_item(i)) for i in response.get("Items", [])]
