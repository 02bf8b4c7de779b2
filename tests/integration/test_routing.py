"""The route wrapper every route uses: auth kinds, validation, error envelope, responses.

A small app made here declares one route of each kind with the real `route(...)` mechanism and
the real authorizer, so these rules are checked once for every route that uses them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from chalice import Blueprint, Chalice
from chalice.test import Client
from pydantic import Field

from chalicelib.api import auth
from chalicelib.api.models import QueryModel, RequestModel, ResponseModel
from chalicelib.api.routing import ROUTES, ApiResponse, Auth, RequestContext, route
from chalicelib.domain.errors import Conflict
from tests.integration.conftest import PLATFORM_KEY, Env

probe = Blueprint(__name__)


class Widget(RequestModel):
    name: str = Field(min_length=1, max_length=20)
    size: int = Field(ge=0)


class WidgetQuery(QueryModel):
    limit: int = Field(default=20, ge=1, le=100)


class WidgetOut(ResponseModel):
    name: str
    size: int
    limit: int


@route(
    probe,
    "/probe/platform",
    "POST",
    auth=Auth.PLATFORM,
    body=Widget,
    query=WidgetQuery,
    response=WidgetOut,
    status=201,
    summary="probe",
    tag="probe",
)
def platform_probe(ctx: RequestContext, body: Widget, query: WidgetQuery) -> WidgetOut:
    return WidgetOut(name=body.name, size=body.size, limit=query.limit)


@route(probe, "/probe/community", "GET", auth=Auth.COMMUNITY, summary="probe", tag="probe")
def community_probe(ctx: RequestContext) -> ApiResponse:
    return ApiResponse(body={"community": ctx.community_id})


@route(
    probe, "/probe/conflict/{thing_id}", "DELETE", auth=Auth.PLATFORM, summary="probe", tag="probe"
)
def conflict_probe(ctx: RequestContext, thing_id: str) -> None:
    raise Conflict(f"{thing_id} is busy")


@route(probe, "/probe/crash", "GET", auth=Auth.NONE, summary="probe", tag="probe")
def crash_probe(ctx: RequestContext) -> None:
    raise RuntimeError("secret detail sk_live_123")


# The probe routes are test-only: keep them out of the app's OpenAPI registry.
ROUTES[:] = [spec for spec in ROUTES if not spec.path.startswith("/probe/")]

probe_app = Chalice(app_name="routing-probe")
probe_app.register_blueprint(auth.blueprint)
probe_app.register_blueprint(probe)


@pytest.fixture
def client(env: Env) -> Iterator[Client]:
    with Client(probe_app) as test_client:
        yield test_client


def _post(
    client: Client,
    body: bytes | str,
    key: str = PLATFORM_KEY,
    path: str = "/probe/platform",
    content_type: str = "application/json",
) -> tuple[int, dict[str, object]]:
    response = client.http.post(
        path, body=body, headers={"Authorization": f"Bearer {key}", "Content-Type": content_type}
    )
    return response.status_code, json.loads(response.body) if response.body else {}


def test_valid_request_gets_the_declared_status_and_model(client: Client) -> None:
    status, body = _post(client, json.dumps({"name": "a", "size": 2}))
    assert status == 201
    assert body == {"name": "a", "size": 2, "limit": 20}


def test_query_parameters_are_parsed_and_bounded(client: Client) -> None:
    status, body = _post(
        client, json.dumps({"name": "a", "size": 2}), path="/probe/platform?limit=5"
    )
    assert (status, body["limit"]) == (201, 5)
    status, body = _post(
        client, json.dumps({"name": "a", "size": 2}), path="/probe/platform?limit=0"
    )
    assert status == 400
    assert body["error"]["details"][0]["field"] == "limit"  # type: ignore[index]
    status, _ = _post(client, json.dumps({"name": "a", "size": 2}), path="/probe/platform?bogus=1")
    assert status == 400


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (json.dumps({"name": "a", "size": 2, "extra": 1}), "extra"),
        (json.dumps({"name": "a", "size": "2"}), "size"),
        (json.dumps({"name": "", "size": 2}), "name"),
        (json.dumps({"size": 2}), "name"),
        ("not json", "body"),
        ("[1, 2]", "body"),
        ("x" * (64 * 1024 + 1), "body"),
    ],
)
def test_bad_bodies_get_400_naming_the_field(client: Client, raw: str, field: str) -> None:
    status, body = _post(client, raw)
    assert status == 400
    error = body["error"]
    assert error["type"] == "invalid_request"  # type: ignore[index]
    assert field in [d["field"] for d in error["details"]]  # type: ignore[index]


def test_non_json_content_type_gets_400_not_415(client: Client) -> None:
    status, body = _post(client, "name=a", content_type="application/x-www-form-urlencoded")
    assert status == 400
    assert body["error"]["type"] == "invalid_request"  # type: ignore[index]


def test_unknown_key_gets_401_envelope(client: Client) -> None:
    status, body = _post(client, json.dumps({"name": "a", "size": 2}), key="nope")
    assert status == 401
    assert body["error"]["type"] == "unauthorized"  # type: ignore[index]


def test_missing_key_gets_401(client: Client) -> None:
    response = client.http.post("/probe/platform", body=b"{}")
    assert response.status_code == 401


def test_platform_key_on_a_community_route_gets_403(client: Client) -> None:
    response = client.http.get(
        "/probe/community", headers={"Authorization": f"Bearer {PLATFORM_KEY}"}
    )
    assert response.status_code == 403
    assert json.loads(response.body)["error"]["type"] == "forbidden"


def test_domain_errors_map_to_their_status(client: Client) -> None:
    response = client.http.delete(
        "/probe/conflict/t1", headers={"Authorization": f"Bearer {PLATFORM_KEY}"}
    )
    assert response.status_code == 409
    assert json.loads(response.body)["error"] == {
        "type": "conflict",
        "message": "t1 is busy",
        "details": [],
    }


def test_unexpected_errors_get_500_without_leaking_details(client: Client) -> None:
    response = client.http.get("/probe/crash")
    assert response.status_code == 500
    body = json.loads(response.body)
    assert body["error"]["type"] == "internal"
    assert "sk_live" not in response.body.decode()
