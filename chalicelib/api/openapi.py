"""Builds the OpenAPI 3.1 document from the routes declared with `route(...)`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from chalicelib.api.errors import STATUS_BY_TYPE
from chalicelib.api.idempotency import REPLAYED_HEADER, kept_status
from chalicelib.api.models import ErrorResponse
from chalicelib.api.routing import ROUTES, Auth, RouteSpec, takes_idempotency_key

REF_TEMPLATE = "#/components/schemas/{model}"
# 429: the deployed stage's throttle answers it on any route (infra/cdk/api_gateway.py).
COMMON_ERROR_STATUSES = (400, 401, 403, 404, 429, 500)
# Any authenticated route: the key could not be checked, or the database stayed busy (503).
AUTHENTICATED_ERROR_STATUSES = (503,)
# Any route taking Idempotency-Key: the key reused with another body or still in use (409),
# its claim throttled (503).
IDEMPOTENT_ERROR_STATUSES = (409, 503)
_REASONS = {status: error_type for error_type, status in STATUS_BY_TYPE.items()}
# Answered before an Idempotency-Key is claimed, so never a key's replayed answer.
AUTH_STATUSES = (401, 403)
_SECONDS = {"type": "integer", "minimum": 1}


def build_openapi(version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    _add_schema(ErrorResponse, schemas, "serialization")
    for spec in ROUTES:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Membership billing API",
            "version": version,
            "description": "Subscriptions and payments for membership communities.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(spec: RouteSpec, schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{spec.method.lower()}_{_slug(spec.path)}",
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": _parameters(spec, schemas),
        "responses": _responses(spec, schemas),
    }
    if spec.auth is not Auth.NONE:
        operation["security"] = [{"apiKey": []}]
        operation["description"] = f"Needs a {spec.auth.value} key."
    if spec.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _add_schema(spec.body, schemas)}},
        }
    if takes_idempotency_key(spec):
        operation["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    return operation


def _parameters(spec: RouteSpec, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in spec.path_params
    ]
    if spec.query is not None:
        query_schema = spec.query.model_json_schema(ref_template=REF_TEMPLATE)
        schemas.update(query_schema.pop("$defs", {}))
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return parameters


def _responses(spec: RouteSpec, schemas: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if spec.response is None:
        responses[str(spec.status)] = {"description": "No content"}
    else:
        responses[str(spec.status)] = {
            "description": "OK",
            "content": {
                "application/json": {"schema": _add_schema(spec.response, schemas, "serialization")}
            },
        }
    error_ref = {"$ref": REF_TEMPLATE.format(model=ErrorResponse.__name__)}
    statuses = set(COMMON_ERROR_STATUSES) | set(spec.error_statuses)
    if spec.auth is Auth.NONE:
        statuses -= {401, 403}
    else:
        statuses |= set(AUTHENTICATED_ERROR_STATUSES)
    if takes_idempotency_key(spec):
        statuses |= set(IDEMPOTENT_ERROR_STATUSES)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _REASONS.get(status, "error"),
            "content": {"application/json": {"schema": error_ref}},
        }
    for status_text, response in responses.items():
        headers = _response_headers(spec, int(status_text))
        if headers:
            response["headers"] = headers
    return responses


def _response_headers(spec: RouteSpec, status: int) -> dict[str, Any]:
    """The headers an answer of `status` carries besides Content-Type (API.md, Conventions)."""
    headers: dict[str, Any] = {}
    if status in (429, 503):
        headers["Retry-After"] = _header("Seconds to wait before trying again.", _SECONDS, True)
    if status == 409:
        headers["Retry-After"] = _header(
            "On a refusal that a retry can overcome (a concurrent change; a payment, or this"
            " Idempotency-Key's first request, still in progress): seconds to wait before trying"
            " again. Absent: the same request will be refused again.",
            _SECONDS,
        )
    if status == 401:
        headers["WWW-Authenticate"] = _header(
            "`Bearer`, when the request had no Authorization header (API Gateway's own 401).",
            {"type": "string", "enum": ["Bearer"]},
        )
    if takes_idempotency_key(spec) and kept_status(status) and status not in AUTH_STATUSES:
        headers[REPLAYED_HEADER] = _header(
            "`true` on the first answer to this Idempotency-Key, replayed.",
            {"type": "string", "enum": ["true"]},
        )
    return headers


def _header(description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


def _add_schema(
    model: type[BaseModel],
    schemas: dict[str, Any],
    mode: Literal["validation", "serialization"] = "validation",
) -> dict[str, Any]:
    """A request body's schema (what is accepted) or, in `serialization` mode, an answer's
    (what is sent: a field with a default is always there, so it is required)."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode)
    schemas.update(schema.pop("$defs", {}))
    schemas[_schema_name(model)] = schema
    return {"$ref": REF_TEMPLATE.format(model=_schema_name(model))}


def _schema_name(model: type[BaseModel]) -> str:
    return model.__name__.replace("[", "_").replace("]", "").replace(",", "_")


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace("-", "_")
