"""What API Gateway answers by itself, in API.md's error envelope, and the REST API's settings.

Requests that never reach our code (no Authorization header, an unknown route, throttling, an
authorizer that failed) get API Gateway's own responses; these turn them into
`{"error": {"type", "message", "details": []}}`. They live in the API's Swagger definition
(SAM's `GatewayResponses`), so they deploy with the API itself.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aws_cdk import aws_sam as sam

from chalicelib.jobs import schedules

# `$context.error.messageString` is API Gateway's message, already quoted as a JSON string.
GATEWAY_MESSAGE = "$context.error.messageString"

# response type -> (status or None to keep API Gateway's, API.md error type, message)
GATEWAY_RESPONSES: dict[str, tuple[int | None, str, str | None]] = {
    "UNAUTHORIZED": (401, "unauthorized", "Missing or invalid API key."),
    "ACCESS_DENIED": (403, "forbidden", "This API key may not call this route."),
    # API Gateway says 403 "Missing Authentication Token" for a route it does not have.
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", "No such route."),
    "THROTTLED": (429, "rate_limited", "Too many requests; retry later."),
    "DEFAULT_4XX": (None, "invalid_request", None),
    "DEFAULT_5XX": (None, "internal", None),
}


# Stage throttling (every route; API Gateway answers THROTTLED, 429, above it). The heaviest
# legitimate traffic is Stripe's webhooks at the worker fleet's full rate: one
# payment_intent.* event per charge, WORKER_MAXIMUM_CONCURRENCY x WORKER_THREADS threads each
# charging every RENEWAL_SECONDS (1,250/s). Twice that leaves the admin API and the pay pages
# room; without a limit, a flood of the unauthenticated routes (webhooks, pay pages) took the
# account's shared Lambda concurrency from the sweeps, the authorizer and the stream publisher
# (only the worker has its own).
PEAK_WEBHOOKS_PER_SECOND = math.ceil(
    schedules.WORKER_MAXIMUM_CONCURRENCY * schedules.WORKER_THREADS / schedules.RENEWAL_SECONDS
)
THROTTLING_RATE_LIMIT = 2 * PEAK_WEBHOOKS_PER_SECOND
THROTTLING_BURST_LIMIT = THROTTLING_RATE_LIMIT
_THROTTLING = {
    "ThrottlingRateLimit": THROTTLING_RATE_LIMIT,
    "ThrottlingBurstLimit": THROTTLING_BURST_LIMIT,
}


def error_body(error_type: str, message: str | None) -> str:
    """The response template: API.md's envelope, with API Gateway's message when none is given."""
    slot = "@message@"
    envelope = json.dumps({"error": {"type": error_type, "message": slot, "details": []}})
    quoted = GATEWAY_MESSAGE if message is None else json.dumps(message)
    return envelope.replace(json.dumps(slot), quoted)


def gateway_responses() -> dict[str, dict[str, Any]]:
    responses: dict[str, dict[str, Any]] = {}
    for response_type, (status, error_type, message) in GATEWAY_RESPONSES.items():
        response: dict[str, Any] = {
            "ResponseTemplates": {"application/json": error_body(error_type, message)}
        }
        if status is not None:
            response["StatusCode"] = str(status)
        if response_type == "UNAUTHORIZED":
            response["ResponseParameters"] = {"Headers": {"WWW-Authenticate": "'Bearer'"}}
        if response_type == "THROTTLED":
            # Like the app's own 429s: when to come back (the stage's limit is per second).
            response["ResponseParameters"] = {"Headers": {"Retry-After": "'1'"}}
        responses[response_type] = response
    return responses


def encode_resource_path(path: str) -> str:
    """A method setting's ResourcePath: each `/` is written `~1` (`/a/b` -> `/~1a~1b`)."""
    return "/" + path.replace("/", "~1")


def configure_rest_api(api: sam.CfnApi, name: str, detailed_metrics_for: list[str]) -> None:
    """Name the API (the `ApiName` of its metrics), add the gateway responses, throttle every
    method, and turn on per-method metrics for the POST routes in `detailed_metrics_for`
    (their own 5xx alarm; such a method's own settings repeat the throttling, which they would
    otherwise leave unset)."""
    api.add_property_override("Name", name)
    api.add_property_override("GatewayResponses", gateway_responses())
    api.add_property_override(
        "MethodSettings",
        [
            {"ResourcePath": "/*", "HttpMethod": "*", **_THROTTLING},
            *(
                {
                    "ResourcePath": encode_resource_path(path),
                    "HttpMethod": "POST",
                    "MetricsEnabled": True,
                    **_THROTTLING,
                }
                for path in detailed_metrics_for
            ),
        ],
    )
