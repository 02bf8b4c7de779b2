"""A profile's billing history (API.md, Profiles: `/v1/profiles/{id}/billing-history`)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.billing_models import BillingHistory
from chalicelib.api.routing import Auth, RequestContext, route

blueprint = Blueprint(__name__)


@route(
    blueprint,
    "/v1/profiles/{profile_id}/billing-history",
    "GET",
    auth=Auth.COMMUNITY,
    response=BillingHistory,
    error_statuses=(404,),
    summary="Every subscription the profile owns or belongs to, with its payments",
    tag="profiles",
)
def billing_history(ctx: RequestContext, profile_id: str) -> BillingHistory:

    return BillingHistory.model_validate(
        ctx.container.billing_history.of_profile(ctx.community_id, profile_id)
    )
