"""Health check and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.models import ResponseModel
from chalicelib.api.routing import ApiResponse, Auth, RequestContext, route

blueprint = Blueprint(__name__)


class Health(ResponseModel):
    ok: bool
    version: str


class OpenApiDocument(ResponseModel):
    """The OpenAPI 3.1 document (free-form)."""

    model_config = {"extra": "allow"}


@route(
    blueprint,
    "/healthz",
    "GET",
    auth=Auth.NONE,
    response=Health,
    summary="Health check",
    tag="health",
)
def healthz(ctx: RequestContext) -> Health:
    return Health(ok=True, version=ctx.container.settings.version)


@route(
    blueprint,
    "/v1/openapi.json",
    "GET",
    auth=Auth.NONE,
    response=OpenApiDocument,
    summary="This API's OpenAPI 3.1 document",
    tag="health",
)
def openapi_document(ctx: RequestContext) -> ApiResponse:
    from chalicelib.api.openapi import build_openapi

    document: dict[str, Any] = build_openapi(ctx.container.settings.version)
    return ApiResponse(body=document)
