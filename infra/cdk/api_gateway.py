"""What API Gateway answers by itself, in API.md's error envelope, and the REST API's settings.

Requests that never reach our code (no Authorization header, an unknown route, throttling, an
authorizer that failed) get API Gateway's own responses; these turn them into
`{"error": {"type", "message", "details": []}}`. They live in the API's Swagger definition
(SAM's `GatewayResponses`), so they deploy with the API itself.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import aws_sam as sam

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
        responses[response_type] = response
    return responses


def encode_resource_path(path: str) -> str:
    """A method setting's ResourcePath: each `/` is written `~1` (`/a/b` -> `/~1a~1b`)."""
    return "/" + path.replace("/", "~1")


def configure_rest_api(api: sam.CfnApi, name: str, detailed_metrics_for: list[str]) -> None:
    """Name the API (the `ApiName` of its metrics), add the gateway responses, and turn on
    per-method metrics for the POST routes in `detailed_metrics_for` (their own 5xx alarm)."""
    api.add_property_override("Name", name)
    api.add_property_override("GatewayResponses", gateway_responses())
    if detailed_metrics_for:
        api.add_property_override(
            "MethodSettings",
            [
                {
                    "ResourcePath": encode_resource_path(path),
                    "HttpMethod": "POST",
                    "MetricsEnabled": True,
                }
                for path in detailed_metrics_for
            ],
        )
