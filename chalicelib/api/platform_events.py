"""Events to the platform (community key): webhook endpoints, the event log, redelivery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.fields import Description
from chalicelib.api.models import (
    ListQuery,
    ListResponse,
    RequestModel,
    ResponseModel,
    shown_once,
)
from chalicelib.api.routing import ApiResponse, Auth, RequestContext, route
from chalicelib.domain.errors import InvalidRequest
from chalicelib.domain.platform_events import utc_text

if TYPE_CHECKING:  # the adapter loads boto3; the app imports no boto3 until a request needs it
    from chalicelib.adapters.dynamodb.platform_events import Endpoint

blueprint = Blueprint(__name__)
TAG = "events"
Url = Field(min_length=8, max_length=2048)
EnabledEvents = Field(min_length=1, max_length=64, description='["*"] or event types')


class CreateEndpoint(RequestModel):
    url: str = Url
    enabled_events: list[str] = EnabledEvents
    description: Description | None = None
    notification_email: str | None = Field(
        default=None, max_length=254, description="told when the endpoint is disabled"
    )


EndpointStatus = Literal["enabled", "disabled"]


class UpdateEndpoint(RequestModel):
    url: str | None = Field(default=None, min_length=8, max_length=2048)
    enabled_events: list[str] | None = Field(default=None, min_length=1, max_length=64)
    description: Description | None = None
    status: EndpointStatus | None = None
    notification_email: str | None = Field(default=None, max_length=254)


class EndpointOut(ResponseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    enabled_events: list[str]
    status: EndpointStatus
    description: str | None
    notification_email: str | None
    created_at: str


class CreatedEndpoint(EndpointOut):
    secret: str | None = shown_once(
        "whsec_...: shown only in this answer; an idempotent replay of the request answers null"
    )


class EventsQuery(ListQuery):
    type: str | None = Field(default=None, max_length=64)
    subject_id: str | None = Field(default=None, max_length=64)


class EventOut(ResponseModel):
    id: str
    object: Literal["event"] = "event"
    type: str
    created_at: str
    community_id: str
    subject_id: str
    sequence: int
    data: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class DeliveryOut(ResponseModel):
    event_id: str
    event_type: str
    attempt: int
    status: Literal["succeeded", "failed"]
    attempted_at: str
    duration_ms: int
    response_status: int | None
    response_body: str = Field(description="the first 1 KiB of the answer")
    error: str | None
    redelivery: bool


class RedeliveryOut(ResponseModel):
    event_id: str
    deliveries: list[dict[str, Any]]


def endpoint_out(endpoint: Endpoint) -> EndpointOut:
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        enabled_events=list(endpoint.enabled_events),
        status=cast(EndpointStatus, endpoint.status),  # checked: the model validates it
        description=endpoint.description,
        notification_email=endpoint.notification_email,
        created_at=utc_text(endpoint.created_at),
    )


@route(
    blueprint,
    "/v1/webhook-endpoints",
    "POST",
    auth=Auth.COMMUNITY,
    body=CreateEndpoint,
    response=CreatedEndpoint,
    status=201,
    summary="Register an HTTPS endpoint for events (the secret is shown only here)",
    tag=TAG,
)
def create_endpoint(ctx: RequestContext, body: CreateEndpoint) -> CreatedEndpoint:
    endpoint = ctx.container.webhook_endpoints.create(
        ctx.community_id,
        url=body.url,
        enabled_events=body.enabled_events,
        description=body.description,
        notification_email=body.notification_email,
    )
    return CreatedEndpoint(**endpoint_out(endpoint).model_dump(), secret=endpoint.secret)


@route(
    blueprint,
    "/v1/webhook-endpoints",
    "GET",
    auth=Auth.COMMUNITY,
    query=ListQuery,
    response=ListResponse[EndpointOut],
    summary="List the community's webhook endpoints, oldest first",
    tag=TAG,
)
def list_endpoints(ctx: RequestContext, query: ListQuery) -> ListResponse[EndpointOut]:
    endpoints, has_more, cursor = ctx.container.webhook_endpoints.page(
        ctx.community_id, limit=query.limit, cursor=query.starting_after
    )
    return ListResponse[EndpointOut](
        data=[endpoint_out(e) for e in endpoints], has_more=has_more, next_cursor=cursor
    )


@route(
    blueprint,
    "/v1/webhook-endpoints/{endpoint_id}",
    "GET",
    auth=Auth.COMMUNITY,
    response=EndpointOut,
    summary="One webhook endpoint",
    tag=TAG,
)
def get_endpoint(ctx: RequestContext, endpoint_id: str) -> EndpointOut:
    return endpoint_out(ctx.container.webhook_endpoints.get(ctx.community_id, endpoint_id))


@route(
    blueprint,
    "/v1/webhook-endpoints/{endpoint_id}",
    "PATCH",
    auth=Auth.COMMUNITY,
    body=UpdateEndpoint,
    response=EndpointOut,
    summary="Change url, enabled_events, description or status",
    tag=TAG,
)
def update_endpoint(ctx: RequestContext, endpoint_id: str, body: UpdateEndpoint) -> EndpointOut:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("url", "enabled_events", "status"):
        if name in changes and changes[name] is None:
            raise InvalidRequest.for_field(name, "This field cannot be null.")
    endpoint = ctx.container.webhook_endpoints.update(ctx.community_id, endpoint_id, changes)
    return endpoint_out(endpoint)


@route(
    blueprint,
    "/v1/webhook-endpoints/{endpoint_id}",
    "DELETE",
    auth=Auth.COMMUNITY,
    status=204,
    summary="Delete a webhook endpoint (its queued deliveries are dropped)",
    tag=TAG,
)
def delete_endpoint(ctx: RequestContext, endpoint_id: str) -> ApiResponse:
    ctx.container.webhook_endpoints.delete(ctx.community_id, endpoint_id)
    return ApiResponse(status=204)


@route(
    blueprint,
    "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    "GET",
    auth=Auth.COMMUNITY,
    query=ListQuery,
    response=ListResponse[DeliveryOut],
    summary="Every delivery attempt to the endpoint, newest first (30 days)",
    tag=TAG,
)
def list_deliveries(
    ctx: RequestContext, endpoint_id: str, query: ListQuery
) -> ListResponse[DeliveryOut]:
    page = ctx.container.webhook_endpoints.deliveries(
        ctx.community_id, endpoint_id, limit=query.limit, cursor=query.starting_after
    )
    return ListResponse[DeliveryOut](
        data=[DeliveryOut(**item) for item in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@route(
    blueprint,
    "/v1/events",
    "GET",
    auth=Auth.COMMUNITY,
    query=EventsQuery,
    response=ListResponse[EventOut],
    summary="Events of the last 30 days, newest first (filter by type or subject)",
    tag=TAG,
)
def list_events(ctx: RequestContext, query: EventsQuery) -> ListResponse[EventOut]:
    page = ctx.container.webhook_endpoints.events(
        ctx.community_id,
        limit=query.limit,
        cursor=query.starting_after,
        event_type=query.type,
        subject_id=query.subject_id,
    )
    return ListResponse[EventOut](
        data=[EventOut(**body) for body in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@route(
    blueprint,
    "/v1/events/{event_id}/redeliver",
    "POST",
    auth=Auth.COMMUNITY,
    response=RedeliveryOut,
    summary="Send one event again now to every enabled endpoint that takes it",
    tag=TAG,
)
def redeliver_event(ctx: RequestContext, event_id: str) -> RedeliveryOut:
    sent = ctx.container.event_publisher.redeliver(ctx.community_id, event_id)
    return RedeliveryOut(
        event_id=event_id,
        deliveries=[
            {
                "endpoint_id": endpoint.id,
                "status": "succeeded" if answer.succeeded else "failed",
                "response_status": answer.status,
                "error": answer.error,
            }
            for endpoint, answer in sent
        ],
    )
