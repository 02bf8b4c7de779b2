"""Stripe webhooks (no API key; the signature is the authentication) and the stored events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.models import ListQuery, ListResponse, ResponseModel
from chalicelib.api.routing import Auth, RequestContext, route
from chalicelib.domain.webhook_events import WebhookEvent

blueprint = Blueprint(__name__)

SIGNATURE_HEADER = "stripe-signature"


class WebhookReceipt(ResponseModel):
    received: bool
    id: str
    result: Literal["processed", "ignored", "failed", "duplicate"]


class WebhookEventOut(ResponseModel):
    id: str
    type: str
    account: str | None
    community_id: str | None
    status: Literal["processed", "ignored", "failed"]
    received_at: datetime
    processed_at: datetime | None
    error: str | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, event: WebhookEvent) -> WebhookEventOut:
        return cls(
            id=event.id,
            type=event.type,
            account=event.account,
            community_id=event.community_id,
            status=event.status.value,
            received_at=event.received_at.replace(microsecond=0),
            processed_at=event.processed_at.replace(microsecond=0) if event.processed_at else None,
            error=event.error,
            payload=event.payload,
        )


class WebhookEventQuery(ListQuery):
    status: Literal["failed", "processed", "ignored"] | None = None
    type: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[a-z0-9_.]+$")


@route(
    blueprint,
    "/webhooks/stripe",
    "POST",
    auth=Auth.NONE,
    response=WebhookReceipt,
    error_statuses=(400, 503),
    summary="Receive a Stripe event (signed with Stripe-Signature)",
    tag="webhooks",
)
def receive_stripe_event(ctx: RequestContext) -> WebhookReceipt:
    headers: Any = ctx.request.headers or {}
    raw_body = ctx.request.raw_body or b""
    if isinstance(raw_body, str):
        raw_body = raw_body.encode()
    delivery = ctx.container.webhooks.receive(raw_body, headers.get(SIGNATURE_HEADER))
    return WebhookReceipt(received=True, id=delivery.event_id, result=delivery.status)


@route(
    blueprint,
    "/v1/webhook-events",
    "GET",
    auth=Auth.PLATFORM,
    query=WebhookEventQuery,
    response=ListResponse[WebhookEventOut],
    summary="List stored Stripe events, newest first",
    tag="webhooks",
)
def list_webhook_events(
    ctx: RequestContext, query: WebhookEventQuery
) -> ListResponse[WebhookEventOut]:
    events, page = ctx.container.webhook_events.list_page(
        status=query.status,
        event_type=query.type,
        limit=query.limit,
        cursor=query.starting_after,
    )
    return ListResponse[WebhookEventOut](
        data=[WebhookEventOut.of(e) for e in events],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@route(
    blueprint,
    "/v1/webhook-events/{event_id}/replay",
    "POST",
    auth=Auth.PLATFORM,
    response=WebhookEventOut,
    error_statuses=(404, 503),
    summary="Run a stored failed event through its handler again",
    tag="webhooks",
)
def replay_webhook_event(ctx: RequestContext, event_id: str) -> WebhookEventOut:
    return WebhookEventOut.of(ctx.container.webhooks.replay(event_id))
