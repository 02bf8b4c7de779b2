"""Plans: what a community sells (community key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from chalice import Blueprint
from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from chalicelib.api.fields import Amount, Currency, Description, Name
from chalicelib.api.models import ListQuery, ListResponse, RequestModel, ResponseModel
from chalicelib.api.routing import Auth, RequestContext, route
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.plans import Plan as PlanEntity

blueprint = Blueprint(__name__)
TAG = "plans"


class Prices(RequestModel):
    month: Amount | None = None
    year: Amount | None = None


class CreatePlan(RequestModel):
    name: Name
    description: Description | None = None
    currency: Currency | None = Field(default=None, description="default: the community's")
    prices: Prices = Field(description="at least one of month, year")
    activation_fee: Amount = 0
    failed_payment_grace_days: int = Field(default=14, ge=0, le=365)
    retry_schedule_days: list[int] = Field(default_factory=list, max_length=52)
    max_members: int | None = Field(default=None, ge=1, le=10_000)


class UpdatePlan(RequestModel):
    name: Name | None = None
    description: Description | None = None
    failed_payment_grace_days: int | None = Field(default=None, ge=0, le=365)
    retry_schedule_days: list[int] | None = Field(default=None, max_length=52)
    max_members: int | None = Field(default=None, ge=1, le=10_000)
    # Named here only to answer with a clear 400: these terms never change.
    prices: SkipJsonSchema[Any] = None
    currency: SkipJsonSchema[Any] = None
    activation_fee: SkipJsonSchema[Any] = None

    @field_validator("prices", "currency", "activation_fee", mode="before")
    @classmethod
    def _immutable(cls, value: Any) -> Any:
        raise ValueError("is immutable; create a new plan instead")


class PlanQuery(ListQuery):
    status: Literal["active", "archived"] | None = None


class Plan(ResponseModel):
    id: str
    name: str
    description: str | None
    currency: str
    prices: dict[Literal["month", "year"], int]
    activation_fee: int
    failed_payment_grace_days: int
    retry_schedule_days: list[int]
    max_members: int | None
    free: bool
    status: Literal["active", "archived"]
    created_at: datetime


def plan_out(plan: PlanEntity) -> Plan:
    return Plan(
        id=plan.id,
        name=plan.name,
        description=plan.description,
        currency=plan.currency,
        prices=dict(plan.prices),
        activation_fee=plan.activation_fee,
        failed_payment_grace_days=plan.failed_payment_grace_days,
        retry_schedule_days=list(plan.retry_schedule_days),
        max_members=plan.max_members,
        free=plan.free,
        status=plan.status,
        created_at=plan.created_at,
    )


def _service(ctx: RequestContext) -> Any:
    from chalicelib.services.plans import PlanService

    c = ctx.container
    return PlanService(c.plans, c.communities, c.clock)


@route(
    blueprint,
    "/v1/plans",
    "POST",
    auth=Auth.COMMUNITY,
    body=CreatePlan,
    response=Plan,
    status=201,
    summary="Create a plan",
    tag=TAG,
)
def create_plan(ctx: RequestContext, body: CreatePlan) -> Plan:
    prices = body.prices.model_dump(exclude_none=True)
    plan = _service(ctx).create(
        ctx.community_id,
        name=body.name,
        description=body.description,
        currency=body.currency,
        prices=prices,
        activation_fee=body.activation_fee,
        failed_payment_grace_days=body.failed_payment_grace_days,
        retry_schedule_days=body.retry_schedule_days,
        max_members=body.max_members,
    )
    return plan_out(plan)


@route(
    blueprint,
    "/v1/plans",
    "GET",
    auth=Auth.COMMUNITY,
    query=PlanQuery,
    response=ListResponse[Plan],
    summary="List plans, newest first",
    tag=TAG,
)
def list_plans(ctx: RequestContext, query: PlanQuery) -> ListResponse[Plan]:
    page = ctx.container.plans.list(
        ctx.community_id, query.status, query.limit, query.starting_after
    )
    return ListResponse[Plan](
        data=[plan_out(p) for p in page.plans], has_more=page.has_more, next_cursor=page.next_cursor
    )


@route(
    blueprint,
    "/v1/plans/{plan_id}",
    "GET",
    auth=Auth.COMMUNITY,
    response=Plan,
    summary="Get a plan",
    tag=TAG,
)
def get_plan(ctx: RequestContext, plan_id: str) -> Plan:
    return plan_out(ctx.container.plans.get(ctx.community_id, plan_id))


@route(
    blueprint,
    "/v1/plans/{plan_id}",
    "PATCH",
    auth=Auth.COMMUNITY,
    body=UpdatePlan,
    response=Plan,
    error_statuses=(409,),
    summary="Change a plan's name, description, grace and retry days or member limit",
    tag=TAG,
)
def update_plan(ctx: RequestContext, plan_id: str, body: UpdatePlan) -> Plan:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("name", "failed_payment_grace_days", "retry_schedule_days"):
        if name in changes and changes[name] is None:
            raise InvalidRequest.for_field(name, "This field cannot be null.")
    return plan_out(_service(ctx).update(ctx.community_id, plan_id, changes))


@route(
    blueprint,
    "/v1/plans/{plan_id}/archive",
    "POST",
    auth=Auth.COMMUNITY,
    response=Plan,
    error_statuses=(409,),
    summary="Archive a plan: no new subscriptions; existing ones go on",
    tag=TAG,
)
def archive_plan(ctx: RequestContext, plan_id: str) -> Plan:
    return plan_out(_service(ctx).archive(ctx.community_id, plan_id))
