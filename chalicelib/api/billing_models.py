"""Request and response models of the Subscriptions, Payments and Reports sections of API.md.

Response models mirror API.md field by field; services build plain dicts in exactly this shape
(`chalicelib/services/views.py`) and the routes validate them through these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer
from pydantic.json_schema import SkipJsonSchema

from chalicelib.api.fields import MAX_AMOUNT, ObjectId
from chalicelib.api.models import ListQuery, QueryModel, RequestModel, ResponseModel
from chalicelib.domain.payments import (
    ACCOUNT_DISCONNECTED,
    CARD_DETACHED,
    NO_CARD_ON_ACCOUNT,
    NOT_ATTEMPTED,
)
from chalicelib.domain.subscriptions import MAX_MEMBERS

BillingCycle = Literal["month", "year"]
SubscriptionStatus = Literal["inactive", "active", "failed_payment", "expiring", "cancelled"]
PaymentKind = Literal["activation", "renewal", "reactivation", "retry", "proration", "plan_change"]
PaymentStatus = Literal[
    "pending", "succeeded", "failed", "refunded", "partially_refunded", "disputed"
]


# --- requests -------------------------------------------------------------------------------
class CreateSubscription(RequestModel):
    plan_id: ObjectId
    owner_id: ObjectId
    member_ids: list[ObjectId] = Field(default_factory=list, max_length=MAX_MEMBERS)
    billing_cycle: BillingCycle
    payment_method_id: ObjectId | None = None
    waive_activation_fee: bool = False


class UpdateSubscription(RequestModel):
    """Only the fields given are changed (all-or-nothing)."""

    plan_id: ObjectId | None = None
    owner_id: ObjectId | None = None
    member_ids: list[ObjectId] | None = Field(default=None, max_length=MAX_MEMBERS)
    billing_cycle: BillingCycle | None = None
    payment_method_id: ObjectId | None = None
    waive_activation_fee: bool | None = None


class PreviewQuery(QueryModel):
    action: Literal["activate", "reactivate", "renew"]


class Activate(RequestModel):
    payment_method_id: ObjectId | None = None


class Cancel(RequestModel):
    at: Literal["period_end", "now"]


class Reactivate(RequestModel):
    payment_method_id: ObjectId | None = None
    owner_id: ObjectId | None = None
    billing_cycle: BillingCycle | None = None
    member_ids: list[ObjectId] | None = Field(default=None, max_length=MAX_MEMBERS)


class NewMember(RequestModel):
    profile_id: ObjectId
    activation_fee: Literal["charge", "waive"] = "charge"


class AddMembers(RequestModel):
    members: list[NewMember] = Field(min_length=1, max_length=MAX_MEMBERS)
    send_welcome_email: bool = False
    send_receipt_email: bool = False


class RemoveMemberQuery(QueryModel):
    at: Literal["period_end", "now"] = "period_end"


class ChangePlan(RequestModel):
    plan_id: ObjectId
    effective: Literal["now", "period_end"]


class SubscriptionListQuery(ListQuery):
    status: SubscriptionStatus | None = None
    plan_id: ObjectId | None = None
    owner_id: ObjectId | None = None
    member_id: ObjectId | None = None


class PaymentListQuery(ListQuery):
    subscription_id: ObjectId | None = None
    profile_id: ObjectId | None = None
    status: PaymentStatus | None = None
    kind: PaymentKind | None = None


def _without_default(schema: dict[str, Any]) -> None:
    """A field that may be left out but is never null: its schema names no (null) default."""
    schema.pop("default", None)


class CreateRefund(RequestModel):
    # Left out: all that is left. An explicit null is refused, not read as "all": a client's
    # unreadable amount (NaN serialises as null) must never become a full refund.
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_without_default
    )
    reason: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_left_out_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must be an amount; leave it out to refund all that is left")
        return value


# --- responses ------------------------------------------------------------------------------
class PlanSummary(ResponseModel):
    id: str
    name: str
    currency: str
    unit_amount: int
    activation_fee: int


class BilledTo(ResponseModel):
    profile_id: str
    name: str
    email: str | None


class CardOnFile(ResponseModel):
    id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    # Added to API.md's shape: the card was detached in Stripe; renewals will fail until the
    # owner attaches another card and the subscription is pointed at it.
    detached: bool = False


class MemberFee(ResponseModel):
    status: Literal["paid", "waived", "due"]
    amount: int
    payment_id: str | None


class Removal(ResponseModel):
    effective_at: str


class MemberOut(ResponseModel):
    profile_id: str
    name: str
    kind: Literal["customer", "dependent"]
    added_at: str
    activation_fee: MemberFee
    removal: Removal | None


class PeriodOut(ResponseModel):
    start: str
    end: str


class CarriedOut(ResponseModel):
    amount: int
    incurred_at: str
    description: str


class PendingChanges(ResponseModel):
    """Only the queued changes appear (`{}` when nothing is queued)."""

    billing_cycle: BillingCycle | None = None
    plan_id: str | None = None

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


class Subscription(ResponseModel):
    id: str
    status: SubscriptionStatus
    plan_id: str
    plan: PlanSummary
    billing_cycle: BillingCycle
    owner_id: str
    billed_to: BilledTo
    payment_method: CardOnFile | None
    members: list[MemberOut]
    current_period: PeriodOut | None
    pending_changes: PendingChanges
    cancel_at: str | None
    failed_at: str | None
    next_retry_at: str | None
    cancelled_at: str | None
    cancellation_reason: Literal["requested", "payment_failed", "expired"] | None
    waive_activation_fee: bool
    created_at: str
    activated_at: str | None
    version: int
    carried: list[CarriedOut] = Field(
        description="amounts under the currency's minimum, charged with the next charge"
    )


class PaymentLineOut(ResponseModel):
    kind: Literal["plan", "activation_fee", "proration", "credit", "carried"]
    description: str
    plan_name: str | None
    profile_id: str | None
    unit_amount: int
    quantity: int
    amount: int


class PaymentMethodOut(ResponseModel):
    type: str
    brand: str | None
    last4: str | None


class StripeRefsOut(ResponseModel):
    account_id: str | None
    payment_intent_id: str | None
    charge_id: str | None


OUR_FAILURES = (NOT_ATTEMPTED, CARD_DETACHED, NO_CARD_ON_ACCOUNT, ACCOUNT_DISCONNECTED)


class FailureOut(ResponseModel):
    code: str = Field(
        description="Stripe's error code (card_declined, expired_card, ...) or one of ours for a "
        "charge never sent to Stripe: " + ", ".join(failure.code for failure in OUR_FAILURES)
    )
    decline_code: str | None
    message: str


class Payment(ResponseModel):
    id: str
    subscription_id: str
    kind: PaymentKind
    status: PaymentStatus
    currency: str
    lines: list[PaymentLineOut]
    subtotal: int
    credit_applied: int
    total: int
    amount_paid: int
    amount_refunded: int  # what Stripe refunded
    amount_refund_pending: int  # reserved by refunds waiting for Stripe's answer
    application_fee_amount: int
    billed_to: BilledTo
    payment_method: PaymentMethodOut | None
    stripe: StripeRefsOut
    failure: FailureOut | None
    period: PeriodOut | None
    created_at: str
    updated_at: str


class PreviewLine(PaymentLineOut):
    pass


class Preview(ResponseModel):
    lines: list[PreviewLine]
    subtotal: int
    credit_applied: int
    total: int
    currency: str
    application_fee_amount: int
    period: PeriodOut | None
    carried_forward: int = Field(
        description="under the currency's minimum: not charged now, carried to the next charge"
    )


class MembersAdded(ResponseModel):
    subscription: Subscription
    payment: Payment | None
    emails_sent: list[str]
    emails_skipped: list[str]


class AuditEventOut(ResponseModel):
    at: str
    type: str
    from_status: str | None
    to_status: str | None
    actor: Literal["api", "scheduler", "webhook"]
    details: dict[str, Any]


class RefundOut(ResponseModel):
    id: str
    payment_id: str
    amount: int
    status: Literal["pending", "succeeded", "failed"]
    created_at: str


class PaymentsLast30Days(ResponseModel):
    count: int
    amount_paid: int
    amount_refunded: int
    application_fees: int


class ReportSummary(ResponseModel):
    currency: str
    subscriptions_by_status: dict[SubscriptionStatus, int]
    mrr: int
    members_with_access: int
    payments_last_30_days: PaymentsLast30Days
    failed_payment_outstanding: int


class Membership(ResponseModel):
    added_at: str
    removed_at: str | None


class BillingHistoryEntry(ResponseModel):
    subscription: Subscription
    role: Literal["owner", "member"]
    former: bool = Field(
        description="The profile no longer has this role (an owner replaced, a member removed)."
    )
    memberships: list[Membership] = Field(
        description="The profile's times as a member of the subscription, oldest first."
    )
    payments: list[Payment]


class BillingHistory(ResponseModel):
    data: list[BillingHistoryEntry]
