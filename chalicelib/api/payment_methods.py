"""Cards of customer profiles (community key), kept on Stripe."""

from __future__ import annotations

import re
from typing import Annotated, Any

from chalice import Blueprint
from pydantic import StringConstraints

from chalicelib.api.models import (
    ListQuery,
    ListResponse,
    RequestModel,
    ResponseModel,
    shown_once,
)
from chalicelib.api.routing import ApiResponse, Auth, RequestContext, route
from chalicelib.domain.errors import NotFound

blueprint = Blueprint(__name__)
TAG = "payment methods"
_PM_ID = r"^pm_[A-Za-z0-9_]{1,250}$"


class AttachPaymentMethod(RequestModel):
    stripe_payment_method_id: Annotated[str, StringConstraints(pattern=_PM_ID)]


class PaymentMethod(ResponseModel):
    id: str
    type: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


class SetupIntent(ResponseModel):
    client_secret: str | None = shown_once(
        "For Stripe.js in the customer's browser; an idempotent replay of the request answers null."
    )


def _out(card: Any) -> PaymentMethod:
    return PaymentMethod(
        id=card.id,
        type=card.type,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
    )


def _service(ctx: RequestContext) -> Any:
    return ctx.container.payment_methods


@route(
    blueprint,
    "/v1/profiles/{profile_id}/payment-methods",
    "POST",
    auth=Auth.COMMUNITY,
    body=AttachPaymentMethod,
    response=PaymentMethod,
    status=201,
    error_statuses=(409, 429, 503),
    summary="Attach a Stripe payment method to a customer",
    tag=TAG,
)
def attach_payment_method(
    ctx: RequestContext, profile_id: str, body: AttachPaymentMethod
) -> PaymentMethod:
    card = _service(ctx).attach(ctx.community_id, profile_id, body.stripe_payment_method_id)
    return _out(card)


@route(
    blueprint,
    "/v1/profiles/{profile_id}/payment-methods",
    "GET",
    auth=Auth.COMMUNITY,
    query=ListQuery,
    response=ListResponse[PaymentMethod],
    error_statuses=(429, 503),
    summary="List a customer's cards",
    tag=TAG,
)
def list_payment_methods(
    ctx: RequestContext, profile_id: str, query: ListQuery
) -> ListResponse[PaymentMethod]:
    codec = ctx.container.cursors
    scope = f"payment_methods:{ctx.community_id}:{profile_id}"
    after = codec.decode(scope, query.starting_after)["pm"] if query.starting_after else None
    cards, has_more = _service(ctx).list(ctx.community_id, profile_id, query.limit, after)
    next_cursor = codec.encode(scope, {"pm": cards[-1].id}) if has_more and cards else None
    return ListResponse[PaymentMethod](
        data=[_out(c) for c in cards], has_more=bool(next_cursor), next_cursor=next_cursor
    )


@route(
    blueprint,
    "/v1/profiles/{profile_id}/payment-methods/{payment_method_id}",
    "DELETE",
    auth=Auth.COMMUNITY,
    status=204,
    error_statuses=(409, 429, 503),
    summary="Detach a card (409 while a live subscription charges it)",
    tag=TAG,
)
def detach_payment_method(
    ctx: RequestContext, profile_id: str, payment_method_id: str
) -> ApiResponse:
    if not re.match(_PM_ID, payment_method_id):
        raise NotFound(f"Payment method {payment_method_id} not found.")
    _service(ctx).detach(ctx.community_id, profile_id, payment_method_id)
    return ApiResponse(status=204)


@route(
    blueprint,
    "/v1/profiles/{profile_id}/setup-intents",
    "POST",
    auth=Auth.COMMUNITY,
    response=SetupIntent,
    status=201,
    error_statuses=(429, 503),
    summary="Start collecting a card in a browser (Stripe SetupIntent)",
    tag=TAG,
)
def create_setup_intent(ctx: RequestContext, profile_id: str) -> SetupIntent:
    return SetupIntent(client_secret=_service(ctx).setup_intent(ctx.community_id, profile_id))
