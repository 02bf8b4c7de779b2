"""Profiles: customers and dependents, their details, access (community key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.fields import Email, Name, ObjectId
from chalicelib.api.models import ListQuery, ListResponse, RequestModel, ResponseModel
from chalicelib.api.routing import Auth, RequestContext, route
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.profiles import Profile as ProfileEntity

blueprint = Blueprint(__name__)
TAG = "profiles"

SubscriptionStatus = Literal["inactive", "active", "failed_payment", "expiring", "cancelled"]


class CreateProfile(RequestModel):
    kind: Literal["customer", "dependent"]
    name: Name
    email: Email | None = Field(default=None, description="customers: required; dependents: none")
    account_holder_id: ObjectId | None = Field(
        default=None, description="dependents: required, a customer's id"
    )
    free_access: bool = False


class UpdateProfile(RequestModel):
    name: Name | None = None
    email: Email | None = None
    free_access: bool | None = None


class ProfileQuery(ListQuery):
    subscription_status: SubscriptionStatus | None = None
    kind: Literal["customer", "dependent"] | None = None
    free_access: bool | None = None
    email: str | None = Field(default=None, min_length=1, max_length=254)


class ProfileSubscription(ResponseModel):
    subscription_id: str
    role: Literal["owner", "member"]
    status: SubscriptionStatus


class Profile(ResponseModel):
    id: str
    kind: Literal["customer", "dependent"]
    name: str
    email: str | None
    account_holder_id: str | None
    free_access: bool
    credit_balance: int = Field(description="credit in `currency`, the profile's own")
    currency: str
    credit_balances: dict[str, int] = Field(
        description="credit per currency held (never spent in another currency)"
    )
    subscriptions: list[ProfileSubscription]
    created_at: datetime


class AccessOut(ResponseModel):
    profile_id: str
    has_access: bool
    reason: Literal["free_access", "subscription"] | None
    subscription_ids: list[str]


def profile_out(profile: ProfileEntity) -> Profile:
    return Profile(
        id=profile.id,
        kind=profile.kind,
        name=profile.name,
        email=profile.email,
        account_holder_id=profile.account_holder_id,
        free_access=profile.free_access,
        credit_balance=profile.credit_balance,
        currency=profile.currency,
        credit_balances={c: amount for c, amount in profile.credit_balances.items() if amount},
        subscriptions=[
            ProfileSubscription(subscription_id=s.subscription_id, role=s.role, status=s.status)
            for s in profile.subscriptions
        ],
        created_at=profile.created_at,
    )


def _service(ctx: RequestContext) -> Any:
    from chalicelib.services.profiles import ProfileService

    c = ctx.container
    return ProfileService(c.profiles, c.communities, c.subscriptions, c.clock, c.stripe_customers)


@route(
    blueprint,
    "/v1/profiles",
    "POST",
    auth=Auth.COMMUNITY,
    body=CreateProfile,
    response=Profile,
    status=201,
    summary="Create a customer or a dependent",
    tag=TAG,
)
def create_profile(ctx: RequestContext, body: CreateProfile) -> Profile:
    profile = _service(ctx).create(
        ctx.community_id,
        kind=body.kind,
        name=body.name,
        email=body.email,
        account_holder_id=body.account_holder_id,
        free_access=body.free_access,
    )
    return profile_out(profile)


@route(
    blueprint,
    "/v1/profiles",
    "GET",
    auth=Auth.COMMUNITY,
    query=ProfileQuery,
    response=ListResponse[Profile],
    summary="List profiles, newest first (by id with subscription_status)",
    tag=TAG,
)
def list_profiles(ctx: RequestContext, query: ProfileQuery) -> ListResponse[Profile]:
    from chalicelib.adapters.dynamodb.profiles import ProfileFilters

    filters = ProfileFilters(
        kind=query.kind,
        free_access=query.free_access,
        email=query.email,
        subscription_status=query.subscription_status,
    )
    page = ctx.container.profiles.list(ctx.community_id, filters, query.limit, query.starting_after)
    return ListResponse[Profile](
        data=[profile_out(p) for p in page.profiles],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@route(
    blueprint,
    "/v1/profiles/{profile_id}",
    "GET",
    auth=Auth.COMMUNITY,
    response=Profile,
    summary="Get a profile",
    tag=TAG,
)
def get_profile(ctx: RequestContext, profile_id: str) -> Profile:
    return profile_out(ctx.container.profiles.get(ctx.community_id, profile_id))


@route(
    blueprint,
    "/v1/profiles/{profile_id}",
    "PATCH",
    auth=Auth.COMMUNITY,
    body=UpdateProfile,
    response=Profile,
    error_statuses=(409, 429, 503),
    summary="Change a profile's name, email or free access (also on its Stripe customer)",
    tag=TAG,
)
def update_profile(ctx: RequestContext, profile_id: str, body: UpdateProfile) -> Profile:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name, value in changes.items():
        if value is None:
            raise InvalidRequest.for_field(name, "This field cannot be null.")
    return profile_out(_service(ctx).update(ctx.community_id, profile_id, **changes))


@route(
    blueprint,
    "/v1/profiles/{profile_id}/access",
    "GET",
    auth=Auth.COMMUNITY,
    response=AccessOut,
    summary="Whether the profile has access now, and why",
    tag=TAG,
)
def profile_access(ctx: RequestContext, profile_id: str) -> AccessOut:
    access = _service(ctx).access(ctx.community_id, profile_id)
    return AccessOut(
        profile_id=access.profile_id,
        has_access=access.has_access,
        reason=access.reason,
        subscription_ids=list(access.subscription_ids),
    )
