"""The OpenAPI document describes the answers as they are sent (found by an outside probe: a
declined payment's 402 carried `error.payment`, which the document's error envelope forbade, and
fields always present, such as `object` and `details`, were listed as optional)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator

from tests.support.billing_api import Api, api_at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def document(api: Api) -> dict[str, Any]:
    answer = api.env.client.http.get("/v1/openapi.json")
    assert answer.status_code == 200
    doc: dict[str, Any] = json.loads(answer.body)
    return doc


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": doc["components"]})


def test_a_declined_payments_402_validates_against_the_document(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    doc = document(api)
    owner = api.customer("Dee", card="4000000000000341")
    sub = api.subscription(api.plan(), owner)

    reply = api.call("POST", f"/v1/subscriptions/{sub['id']}/activate", {})

    assert reply.status == 402 and reply.body["error"]["payment"]["status"] == "failed"
    operation = doc["paths"]["/v1/subscriptions/{subscription_id}/activate"]["post"]
    schema = operation["responses"]["402"]["content"]["application/json"]["schema"]
    assert list(validator(doc, schema).iter_errors(reply.body)) == []


def test_fields_always_in_an_answer_are_required_in_the_document(api_at: Any) -> None:
    schemas = document(api_at(APRIL))["components"]["schemas"]
    for name, fields in {
        "ErrorBody": {"type", "message", "details"},
        "EventOut": {"id", "object", "type", "created_at", "data"},
        "EndpointOut": {"id", "object", "url", "status"},
        "CreatedEndpoint": {"id", "object", "secret"},
    }.items():
        assert fields <= set(schemas[name]["required"]), (name, schemas[name]["required"])
