"""`POST /v1/subscriptions/{id}/payment-link` (API.md, Dunning): a pay-now link for the owner."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.adapters.dynamodb.codec import format_time
from chalicelib.api.models import ResponseModel, shown_once
from chalicelib.api.routing import Auth, RequestContext, route

blueprint = Blueprint(__name__)


class PaymentLinkOut(ResponseModel):
    url: str | None = shown_once(
        "The pay-now link (its token is stored only as a hash); an idempotent replay of the"
        " request answers null: issue a new link."
    )
    expires_at: str


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/payment-link",
    "POST",
    auth=Auth.COMMUNITY,
    response=PaymentLinkOut,
    status=201,
    error_statuses=(404, 409),
    summary="Issue a pay-now link for a failed_payment subscription (older links stop working)",
    tag="subscriptions",
)
def issue_payment_link(ctx: RequestContext, subscription_id: str) -> PaymentLinkOut:
    issued = ctx.container.payment_links.issue(
        ctx.community_id, subscription_id, ctx.container.clock.now()
    )
    return PaymentLinkOut(url=issued.url, expires_at=format_time(issued.expires_at))
