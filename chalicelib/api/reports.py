"""Reports (API.md, Reports)."""

from __future__ import annotations

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.billing_models import ReportSummary
from chalicelib.api.fields import Currency
from chalicelib.api.models import QueryModel
from chalicelib.api.routing import Auth, RequestContext, route

blueprint = Blueprint(__name__)


class ReportQuery(QueryModel):
    currency: Currency | None = Field(
        default=None, description="the currency the money figures are in (default: the community's)"
    )


@route(
    blueprint,
    "/v1/reports/summary",
    "GET",
    auth=Auth.COMMUNITY,
    query=ReportQuery,
    response=ReportSummary,
    summary="Subscriptions by status, MRR, access, last 30 days of payments (one currency)",
    tag="reports",
)
def report_summary(ctx: RequestContext, query: ReportQuery) -> ReportSummary:
    return ReportSummary.model_validate(
        ctx.container.reports.summary(ctx.community_id, query.currency)
    )
