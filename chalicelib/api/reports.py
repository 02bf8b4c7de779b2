"""Reports (API.md, Reports)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.billing_models import ReportSummary
from chalicelib.api.routing import Auth, RequestContext, route

blueprint = Blueprint(__name__)


@route(
    blueprint,
    "/v1/reports/summary",
    "GET",
    auth=Auth.COMMUNITY,
    response=ReportSummary,
    summary="Subscriptions by status, MRR, access, last 30 days of payments",
    tag="reports",
)
def report_summary(ctx: RequestContext) -> ReportSummary:
    return ReportSummary.model_validate(ctx.container.reports.summary(ctx.community_id))
