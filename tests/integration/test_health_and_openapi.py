from __future__ import annotations

import json

from openapi_spec_validator import validate

from tests.integration.conftest import Env


def test_healthz_answers_without_a_key(env: Env) -> None:
    response = env.client.http.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.body) == {"ok": True, "version": env.settings.version}


def test_openapi_document_is_valid_openapi_31_and_lists_every_route(env: Env) -> None:
    from chalicelib.api.routing import ROUTES

    response = env.client.http.get("/v1/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.body)
    validate(document)
    assert document["openapi"] == "3.1.0"
    for spec in ROUTES:
        assert spec.method.lower() in document["paths"][spec.path]
