"""Test clock routes (API.md, Test clock): platform key; 404 in stages without a test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalice import Blueprint
from pydantic import Field

from chalicelib.api.fields import UtcTime
from chalicelib.api.models import RequestModel, ResponseModel
from chalicelib.api.routing import Auth, RequestContext, route
from chalicelib.domain.errors import FieldProblem, InvalidRequest

blueprint = Blueprint(__name__)

MAX_DAYS = 3660  # ten years per call is plenty; keeps one call's work bounded
ADVANCE_FIELDS = ("days", "seconds", "to")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestClockNow(ResponseModel):
    now: str


class AdvanceTestClock(RequestModel):
    days: int | None = Field(default=None, ge=0, le=MAX_DAYS)
    seconds: int | None = Field(default=None, ge=0, le=MAX_DAYS * 86400)
    to: UtcTime | None = None


class Processed(ResponseModel):
    renewed: int
    retried: int
    cancelled: int
    expired: int
    renewals_failed: int = Field(description="Renewal charges declined (beyond API.md's four).")


class AdvanceResponse(ResponseModel):
    now: str
    processed: Processed


@route(
    blueprint,
    "/v1/test-clock",
    "GET",
    auth=Auth.PLATFORM,
    response=TestClockNow,
    summary="The test clock's current time",
    tag="test-clock",
    error_statuses=(404,),
)
def get_test_clock(ctx: RequestContext) -> TestClockNow:
    from chalicelib.jobs import test_clock

    return TestClockNow(now=rfc3339(test_clock.now(ctx.container)))


@route(
    blueprint,
    "/v1/test-clock/advance",
    "POST",
    auth=Auth.PLATFORM,
    body=AdvanceTestClock,
    response=AdvanceResponse,
    summary="Move the test clock forward and run everything due up to then",
    tag="test-clock",
    error_statuses=(400, 404, 409),
)
def advance_test_clock(ctx: RequestContext, body: AdvanceTestClock) -> AdvanceResponse:
    from chalicelib.jobs import test_clock

    test_clock.now(ctx.container)  # 404 first when the stage has no test clock
    given = [name for name in ADVANCE_FIELDS if getattr(body, name) is not None]
    if len(given) != 1:
        message = "Give exactly one of days, seconds or to."
        named = given or list(ADVANCE_FIELDS)
        raise InvalidRequest(message, [FieldProblem(name, message) for name in named])
    name = given[0]
    if body.to is not None:
        target = body.to
        if target.microsecond == 0:
            # Times are shown to the second; "to 10:00:00Z" includes what is due at 10:00:00.4.
            target += timedelta(microseconds=999_999)
        result = test_clock.advance(ctx.container, to=target, field_name=name)
    else:
        delta = timedelta(days=body.days or 0, seconds=body.seconds or 0)
        result = test_clock.advance(ctx.container, by=delta, field_name=name)
    return AdvanceResponse(now=rfc3339(result.now), processed=Processed(**result.processed))
