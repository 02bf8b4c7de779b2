"""Communities and their API keys (platform key only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.fields import Currency, Name, StripeAccountId
from chalicelib.api.models import (
    ListQuery,
    ListResponse,
    RequestModel,
    ResponseModel,
    shown_once,
)
from chalicelib.api.routing import ApiResponse, Auth, RequestContext, route
from chalicelib.domain.communities import Community as CommunityEntity
from chalicelib.domain.errors import InvalidRequest

blueprint = Blueprint(__name__)
TAG = "communities"


class CreateCommunity(RequestModel):
    name: Name
    currency: Currency = "usd"
    stripe_account_id: StripeAccountId | None = None
    application_fee_bps: int = Field(default=0, ge=0, le=10_000)


class UpdateCommunity(RequestModel):
    name: Name | None = None
    stripe_account_id: StripeAccountId | None = Field(
        default=None, description="null disconnects the Stripe account"
    )
    application_fee_bps: int | None = Field(default=None, ge=0, le=10_000)


class ApiKey(ResponseModel):
    id: str
    secret: str | None = shown_once(
        "Shown only in the response that created the key; store it safely."
        " An idempotent replay of that request answers null."
    )


class Community(ResponseModel):
    id: str
    name: str
    currency: str
    stripe_account_id: str | None
    application_fee_bps: int
    created_at: datetime


class CreatedCommunity(Community):
    api_key: ApiKey


def _out(community: CommunityEntity) -> Community:
    return Community(
        id=community.id,
        name=community.name,
        currency=community.currency,
        stripe_account_id=community.stripe_account_id,
        application_fee_bps=community.application_fee_bps,
        created_at=community.created_at,
    )


def _service(ctx: RequestContext) -> Any:
    from chalicelib.services.communities import CommunityService

    c = ctx.container
    return CommunityService(c.communities, c.api_keys, c.clock)


@route(
    blueprint,
    "/v1/communities",
    "POST",
    auth=Auth.PLATFORM,
    body=CreateCommunity,
    response=CreatedCommunity,
    status=201,
    error_statuses=(409,),
    summary="Create a community and its first API key",
    tag=TAG,
)
def create_community(ctx: RequestContext, body: CreateCommunity) -> CreatedCommunity:
    community, key = _service(ctx).create(
        body.name, body.currency, body.stripe_account_id, body.application_fee_bps
    )
    return CreatedCommunity(
        **_out(community).model_dump(), api_key=ApiKey(id=key.id, secret=key.secret)
    )


@route(
    blueprint,
    "/v1/communities",
    "GET",
    auth=Auth.PLATFORM,
    query=ListQuery,
    response=ListResponse[Community],
    summary="List communities, newest first",
    tag=TAG,
)
def list_communities(ctx: RequestContext, query: ListQuery) -> ListResponse[Community]:
    page = ctx.container.communities.list(query.limit, query.starting_after)
    return ListResponse[Community](
        data=[_out(c) for c in page.communities],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@route(
    blueprint,
    "/v1/communities/{community_id}",
    "GET",
    auth=Auth.PLATFORM,
    response=Community,
    summary="Get a community",
    tag=TAG,
)
def get_community(ctx: RequestContext, community_id: str) -> Community:
    return _out(ctx.container.communities.get(community_id))


@route(
    blueprint,
    "/v1/communities/{community_id}",
    "PATCH",
    auth=Auth.PLATFORM,
    body=UpdateCommunity,
    response=Community,
    error_statuses=(409,),
    summary="Change a community's name, Stripe account or application fee",
    tag=TAG,
)
def update_community(ctx: RequestContext, community_id: str, body: UpdateCommunity) -> Community:
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("name", "application_fee_bps"):
        if name in changes and changes[name] is None:
            raise InvalidRequest.for_field(name, "This field cannot be null.")
    return _out(_service(ctx).update(community_id, **changes))


@route(
    blueprint,
    "/v1/communities/{community_id}/api-keys",
    "POST",
    auth=Auth.PLATFORM,
    response=ApiKey,
    status=201,
    summary="Issue another API key for a community",
    tag=TAG,
)
def create_api_key(ctx: RequestContext, community_id: str) -> ApiKey:
    key = _service(ctx).issue_key(community_id)
    return ApiKey(id=key.id, secret=key.secret)


@route(
    blueprint,
    "/v1/communities/{community_id}/api-keys/{key_id}",
    "DELETE",
    auth=Auth.PLATFORM,
    status=204,
    summary="Revoke an API key (refused with 401 from the next request on)",
    tag=TAG,
)
def revoke_api_key(ctx: RequestContext, community_id: str, key_id: str) -> ApiResponse:
    _service(ctx).revoke_key(community_id, key_id)
    return ApiResponse(status=204)
