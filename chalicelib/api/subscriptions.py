"""Subscriptions and their members (API.md, Subscriptions). Routes translate HTTP only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint

from chalicelib.api.billing_models import (
    Activate,
    AddMembers,
    AuditEventOut,
    Cancel,
    ChangePlan,
    CreateSubscription,
    MembersAdded,
    Preview,
    PreviewQuery,
    Reactivate,
    RemoveMemberQuery,
    Subscription,
    SubscriptionListQuery,
    UpdateSubscription,
)
from chalicelib.api.models import ListQuery, ListResponse
from chalicelib.api.routing import ApiResponse, Auth, RequestContext, route

if TYPE_CHECKING:
    from chalicelib.services.subscriptions import SubscriptionService

blueprint = Blueprint(__name__)
TAG = "subscriptions"
PAYMENT_ERRORS = (400, 402, 404, 409, 503)


def _service(ctx: RequestContext) -> SubscriptionService:
    return ctx.container.subscription_service


def _out(ctx: RequestContext, sub: Any) -> Subscription:
    return Subscription.model_validate(ctx.container.subscription_views.view(sub))


@route(
    blueprint,
    "/v1/subscriptions",
    "POST",
    auth=Auth.COMMUNITY,
    body=CreateSubscription,
    response=Subscription,
    status=201,
    error_statuses=(400, 409),
    summary="Create a subscription (inactive)",
    tag=TAG,
)
def create_subscription(ctx: RequestContext, body: CreateSubscription) -> Subscription:
    sub = _service(ctx).create(
        ctx.community_id,
        plan_id=body.plan_id,
        owner_id=body.owner_id,
        member_ids=body.member_ids,
        billing_cycle=body.billing_cycle,
        payment_method_id=body.payment_method_id,
        waive_activation_fee=body.waive_activation_fee,
    )
    return _out(ctx, sub)


@route(
    blueprint,
    "/v1/subscriptions",
    "GET",
    auth=Auth.COMMUNITY,
    query=SubscriptionListQuery,
    response=ListResponse[Subscription],
    error_statuses=(400,),
    summary="List subscriptions",
    tag=TAG,
)
def list_subscriptions(
    ctx: RequestContext, query: SubscriptionListQuery
) -> ListResponse[Subscription]:
    subs, has_more, cursor = _service(ctx).list_subscriptions(
        ctx.community_id,
        limit=query.limit,
        cursor=query.starting_after,
        status=query.status,
        plan_id=query.plan_id,
        owner_id=query.owner_id,
        member_id=query.member_id,
    )
    views = ctx.container.subscription_views
    cache = views.cache(ctx.community_id)
    cache.prefetch([pid for sub in subs for pid in (sub.owner_id, *sub.member_ids)])
    return ListResponse[Subscription](
        data=[Subscription.model_validate(views.view(s, cache)) for s in subs],
        has_more=has_more,
        next_cursor=cursor,
    )


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}",
    "GET",
    auth=Auth.COMMUNITY,
    response=Subscription,
    error_statuses=(404,),
    summary="Get a subscription",
    tag=TAG,
)
def get_subscription(ctx: RequestContext, subscription_id: str) -> Subscription:
    return _out(ctx, _service(ctx).get(ctx.community_id, subscription_id))


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}",
    "PATCH",
    auth=Auth.COMMUNITY,
    body=UpdateSubscription,
    response=Subscription,
    error_statuses=(400, 404, 409),
    summary="Change a subscription (all-or-nothing)",
    tag=TAG,
)
def update_subscription(
    ctx: RequestContext, subscription_id: str, body: UpdateSubscription
) -> Subscription:
    given = {name: getattr(body, name) for name in body.model_fields_set}
    sub = _service(ctx).update(ctx.community_id, subscription_id, given)
    return _out(ctx, sub)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}",
    "DELETE",
    auth=Auth.COMMUNITY,
    status=204,
    error_statuses=(404, 409),
    summary="Delete an inactive subscription",
    tag=TAG,
)
def delete_subscription(ctx: RequestContext, subscription_id: str) -> ApiResponse:
    _service(ctx).delete(ctx.community_id, subscription_id)
    return ApiResponse(None, status=204)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/preview",
    "GET",
    auth=Auth.COMMUNITY,
    query=PreviewQuery,
    response=Preview,
    error_statuses=(400, 404, 409),
    summary="Preview what activate / reactivate / renew would charge",
    tag=TAG,
)
def preview_subscription(ctx: RequestContext, subscription_id: str, query: PreviewQuery) -> Preview:
    data = _service(ctx).preview(ctx.community_id, subscription_id, query.action)
    return Preview.model_validate(data)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/activate",
    "POST",
    auth=Auth.COMMUNITY,
    body=Activate,
    response=Subscription,
    error_statuses=PAYMENT_ERRORS,
    summary="Activate: charge the first period",
    tag=TAG,
)
def activate_subscription(
    ctx: RequestContext, subscription_id: str, body: Activate
) -> Subscription:
    result = _service(ctx).activate(ctx.community_id, subscription_id, body.payment_method_id)
    return _out(ctx, result.subscription)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/cancel",
    "POST",
    auth=Auth.COMMUNITY,
    body=Cancel,
    response=Subscription,
    error_statuses=(400, 404, 409),
    summary="Cancel at period end or now",
    tag=TAG,
)
def cancel_subscription(ctx: RequestContext, subscription_id: str, body: Cancel) -> Subscription:
    sub = _service(ctx).cancel(ctx.community_id, subscription_id, body.at)
    return _out(ctx, sub)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/resume",
    "POST",
    auth=Auth.COMMUNITY,
    response=Subscription,
    error_statuses=(404, 409),
    summary="Resume an expiring subscription",
    tag=TAG,
)
def resume_subscription(ctx: RequestContext, subscription_id: str) -> Subscription:
    return _out(ctx, _service(ctx).resume(ctx.community_id, subscription_id))


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/reactivate",
    "POST",
    auth=Auth.COMMUNITY,
    body=Reactivate,
    response=Subscription,
    error_statuses=PAYMENT_ERRORS,
    summary="Reactivate a failed_payment subscription: full period charged now",
    tag=TAG,
)
def reactivate_subscription(
    ctx: RequestContext, subscription_id: str, body: Reactivate
) -> Subscription:
    result = _service(ctx).reactivate(
        ctx.community_id,
        subscription_id,
        payment_method_id=body.payment_method_id,
        owner_id=body.owner_id,
        billing_cycle=body.billing_cycle,
        member_ids=body.member_ids,
    )
    return _out(ctx, result.subscription)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/change-plan",
    "POST",
    auth=Auth.COMMUNITY,
    body=ChangePlan,
    response=Subscription,
    error_statuses=PAYMENT_ERRORS,
    summary="Change plan now (prorated) or at period end",
    tag=TAG,
)
def change_plan(ctx: RequestContext, subscription_id: str, body: ChangePlan) -> Subscription:
    result = _service(ctx).change_plan(
        ctx.community_id, subscription_id, body.plan_id, body.effective
    )
    return _out(ctx, result.subscription)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/members",
    "POST",
    auth=Auth.COMMUNITY,
    body=AddMembers,
    response=MembersAdded,
    error_statuses=PAYMENT_ERRORS,
    summary="Add members now (prorated charge plus activation fees)",
    tag=TAG,
)
def add_members(ctx: RequestContext, subscription_id: str, body: AddMembers) -> MembersAdded:
    from chalicelib.domain.members import MemberAddition
    from chalicelib.services.views import payment_view

    added = ctx.container.member_service.add(
        ctx.community_id,
        subscription_id,
        [MemberAddition(m.profile_id, m.activation_fee) for m in body.members],
        send_welcome_email=body.send_welcome_email,
        send_receipt_email=body.send_receipt_email,
    )
    return MembersAdded.model_validate(
        {
            "subscription": ctx.container.subscription_views.view(added.subscription),
            "payment": payment_view(added.payment) if added.payment else None,
            "emails_sent": added.emails_sent,
            "emails_skipped": added.emails_skipped,
        }
    )


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/members/{profile_id}",
    "DELETE",
    auth=Auth.COMMUNITY,
    query=RemoveMemberQuery,
    response=Subscription,
    error_statuses=(400, 404, 409),
    summary="Remove a member at period end or now",
    tag=TAG,
)
def remove_member(
    ctx: RequestContext, subscription_id: str, profile_id: str, query: RemoveMemberQuery
) -> Subscription:
    members = ctx.container.member_service
    sub = members.remove(ctx.community_id, subscription_id, profile_id, query.at)
    return _out(ctx, sub)


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/members/{profile_id}/restore",
    "POST",
    auth=Auth.COMMUNITY,
    response=Subscription,
    error_statuses=(404, 409),
    summary="Undo a pending removal",
    tag=TAG,
)
def restore_member(ctx: RequestContext, subscription_id: str, profile_id: str) -> Subscription:
    members = ctx.container.member_service
    return _out(ctx, members.restore(ctx.community_id, subscription_id, profile_id))


@route(
    blueprint,
    "/v1/subscriptions/{subscription_id}/events",
    "GET",
    auth=Auth.COMMUNITY,
    query=ListQuery,
    response=ListResponse[AuditEventOut],
    error_statuses=(400, 404),
    summary="The audit trail of a subscription, oldest first",
    tag=TAG,
)
def subscription_events(
    ctx: RequestContext, subscription_id: str, query: ListQuery
) -> ListResponse[AuditEventOut]:
    page = _service(ctx).events(
        ctx.community_id, subscription_id, query.limit, query.starting_after
    )
    return ListResponse[AuditEventOut](
        data=[AuditEventOut.model_validate(e) for e in page.items],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
