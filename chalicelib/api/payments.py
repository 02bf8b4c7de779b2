"""Payments and refunds (API.md, Payments). Routes translate HTTP only."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.billing_models import CreateRefund, Payment, PaymentListQuery, RefundOut
from chalicelib.api.models import ListResponse
from chalicelib.api.routing import Auth, RequestContext, route

blueprint = Blueprint(__name__)
TAG = "payments"


@route(
    blueprint,
    "/v1/payments",
    "GET",
    auth=Auth.COMMUNITY,
    query=PaymentListQuery,
    response=ListResponse[Payment],
    error_statuses=(400,),
    summary="List payments, newest first",
    tag=TAG,
)
def list_payments(ctx: RequestContext, query: PaymentListQuery) -> ListResponse[Payment]:
    from chalicelib.services.views import payment_view

    found, has_more, cursor = ctx.container.payment_service.list_payments(
        ctx.community_id,
        limit=query.limit,
        cursor=query.starting_after,
        subscription_id=query.subscription_id,
        profile_id=query.profile_id,
        status=query.status,
        kind=query.kind,
    )
    return ListResponse[Payment](
        data=[Payment.model_validate(payment_view(p)) for p in found],
        has_more=has_more,
        next_cursor=cursor,
    )


@route(
    blueprint,
    "/v1/payments/{payment_id}",
    "GET",
    auth=Auth.COMMUNITY,
    response=Payment,
    error_statuses=(404,),
    summary="Get a payment",
    tag=TAG,
)
def get_payment(ctx: RequestContext, payment_id: str) -> Payment:
    from chalicelib.services.views import payment_view

    payment = ctx.container.payment_service.get(ctx.community_id, payment_id)
    return Payment.model_validate(payment_view(payment))


@route(
    blueprint,
    "/v1/payments/{payment_id}/refunds",
    "POST",
    auth=Auth.COMMUNITY,
    body=CreateRefund,
    response=RefundOut,
    status=201,
    error_statuses=(400, 404, 409, 503),
    summary="Refund a payment (all that is left, or an amount)",
    tag=TAG,
)
def create_refund(ctx: RequestContext, payment_id: str, body: CreateRefund) -> RefundOut:
    from chalicelib.services.views import refund_view

    payments = ctx.container.payment_service
    refund = payments.refund(ctx.community_id, payment_id, body.amount, body.reason)
    return RefundOut.model_validate(refund_view(refund))
