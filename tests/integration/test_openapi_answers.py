"""The OpenAPI document describes the answers as they are sent (found by an outside probe: a
declined payment's 402 carried `error.payment`, which the document's error envelope forbade, and
fields always present, such as `object` and `details`, were listed as optional)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft202012Validator

from chalicelib.api.idempotency import request_fingerprint
from chalicelib.services.payment_links import REQUESTS_PER_TOKEN_PER_MINUTE
from tests.integration.test_payment_links import failed_subscription, issued_token, page, pay_call
from tests.support.billing_api import Api, Reply, api_at, billing_env, reply_of
from tests.support.localstripe import localstripe_url
from tests.support.webhook_flow import throttled_once

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


# OpenAPI ignores a response header named Content-Type: the content's media type says it.
UNDECLARED_HEADERS = {"content-type"}


def declared_answer_errors(doc: dict[str, Any], method: str, path: str, reply: Reply) -> list[str]:
    """What the document gets wrong about a real answer: its status undeclared, its body
    outside the schema declared for that status, or its headers not those declared for it."""
    responses = doc["paths"][path][method.lower()]["responses"]
    if str(reply.status) not in responses:
        return [f"{method} {path}: {reply.status} not declared ({sorted(responses)})"]
    response = responses[str(reply.status)]
    errors = [
        f"{method} {path} {reply.status}: {problem}"
        for problem in header_errors(doc, response.get("headers", {}), reply.headers)
    ]
    content = response.get("content")
    if content is None:
        return errors
    schema = content["application/json"]["schema"]
    return errors + [
        f"{method} {path} {reply.status}: {error.message}"
        for error in validator(doc, schema).iter_errors(reply.body)
    ]


def header_errors(doc: dict[str, Any], declared: dict[str, Any], sent: dict[str, str]) -> list[str]:
    """A header sent but not declared, a required one missing, or a value outside its schema."""
    by_name = {name.lower(): header for name, header in declared.items()}
    errors = [
        f"header {name} not declared ({sorted(declared)})"
        for name in sent
        if name not in by_name and name not in UNDECLARED_HEADERS
    ]
    for name, header in by_name.items():
        if name not in sent:
            errors += [f"required header {name} missing"] if header.get("required") else []
            continue
        value: Any = sent[name]
        if header["schema"].get("type") == "integer" and value.isdigit():
            value = int(value)
        errors += [
            f"header {name}: {error.message}"
            for error in validator(doc, header["schema"]).iter_errors(value)
        ]
    return errors


def idempotent_post(api: Api, path: str, body: Any, key: str) -> Reply:
    response = api.env.client.http.post(
        path,
        headers={
            "Authorization": f"Bearer {api.key}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
        body=json.dumps(body),
    )
    return reply_of(response)


def test_every_authenticated_post_declares_the_idempotency_keys_409_and_503(api_at: Any) -> None:
    """A key reused with another body is a 409 and a throttled claim a 503 on every POST that
    takes Idempotency-Key (API.md, Idempotency); the document declared neither on most of them
    (POST /v1/plans: 201, 400, 401, 403, 404, 500), and offered the header on the routes without
    an API key that ignore it (the pay page, Stripe's webhook)."""
    api: Api = api_at(APRIL)
    doc = document(api)
    plan = {"name": "Gold", "prices": {"month": 3000}}
    with throttled_once(api.env.container.dynamodb, "PutItem"):
        busy = idempotent_post(api, "/v1/plans", plan, "k1")
    assert idempotent_post(api, "/v1/plans", plan, "k2").status == 201
    reused = idempotent_post(api, "/v1/plans", {**plan, "name": "Silver"}, "k2")

    assert (busy.status, reused.status) == (503, 409)
    assert declared_answer_errors(doc, "POST", "/v1/plans", busy) == []
    assert declared_answer_errors(doc, "POST", "/v1/plans", reused) == []
    for path, operations in doc["paths"].items():
        post = operations.get("post")
        if post is None:
            continue
        takes_key = "Idempotency-Key" in {p["name"] for p in post["parameters"]}
        assert takes_key == ("security" in post), path
        if takes_key:
            assert {"409", "503"} <= set(post["responses"]), (path, sorted(post["responses"]))


def test_every_authenticated_route_declares_the_503_of_a_busy_database(api_at: Any) -> None:
    """A read throttled past the SDK's retries (or a key that could not be checked) is a 503
    `unavailable` on any authenticated route, GETs included (routing.py); GETs declared none."""
    api: Api = api_at(APRIL)
    doc = document(api)
    plan = api.plan()
    with throttled_once(api.env.container.dynamodb, "GetItem"):
        busy = api.call("GET", f"/v1/plans/{plan['id']}")

    assert busy.status == 503
    assert declared_answer_errors(doc, "GET", "/v1/plans/{plan_id}", busy) == []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if "security" in operation:
                assert "503" in operation["responses"], (method, path)


def test_todays_contract_changes_answer_as_the_document_says(api_at: Any) -> None:
    """Billing history's `former` and `memberships`, a detached card, the summary of another
    currency, a page of webhook endpoints, `"amount": null` and an unknown query parameter:
    each real answer's status is declared and its body validates against the document."""
    api: Api = api_at(APRIL)
    doc = document(api)
    owner = api.customer("Dee")
    member = api.customer("Max", card=None)
    sub = api.active(api.plan(), owner, [owner["id"], member["id"]])
    api.ok("DELETE", f"/v1/subscriptions/{sub['id']}/members/{member['id']}?at=now")
    payment_id = api.payments(sub["id"])[0]["id"]
    spare = api.customer("Sam")
    spare_sub = api.subscription(api.plan(), spare)
    api.ok("DELETE", f"/v1/profiles/{spare['id']}/payment-methods/{spare['card']}", status=204)
    for url in ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"):
        api.ok("POST", "/v1/webhook-endpoints", {"url": url, "enabled_events": ["*"]}, 201)
    history = f"/v1/profiles/{member['id']}/billing-history"
    detached = f"/v1/subscriptions/{spare_sub['id']}"
    refunds = f"/v1/payments/{payment_id}/refunds"
    checks = [
        ("GET", "/v1/profiles/{profile_id}/billing-history", history, None),
        ("GET", "/v1/subscriptions/{subscription_id}", detached, None),
        ("GET", "/v1/reports/summary", "/v1/reports/summary?currency=jpy", None),
        ("GET", "/v1/reports/summary", "/v1/reports/summary?currency=xxx", None),
        ("GET", "/v1/webhook-endpoints", "/v1/webhook-endpoints?limit=1", None),
        ("GET", "/v1/webhook-endpoints", "/v1/webhook-endpoints?status=enabled", None),
        ("POST", "/v1/payments/{payment_id}/refunds", refunds, {"amount": None}),
    ]
    replies: dict[str, Reply] = {}
    errors: list[str] = []
    for method, template, path, body in checks:
        replies[path] = api.call(method, path, body)
        errors += declared_answer_errors(doc, method, template, replies[path])

    assert errors == []
    [entry] = replies[history].body["data"]
    assert entry["former"] is True and entry["memberships"][0]["removed_at"]
    assert replies[detached].body["payment_method"]["detached"] is True
    assert replies["/v1/reports/summary?currency=jpy"].body["currency"] == "jpy"
    assert replies["/v1/reports/summary?currency=xxx"].status == 400
    assert replies["/v1/webhook-endpoints?limit=1"].body["has_more"] is True
    assert replies["/v1/webhook-endpoints?status=enabled"].status == 400
    assert replies[refunds].body["error"]["details"][0]["field"] == "amount"


def test_the_document_refuses_a_price_above_stripes_maximum_as_the_api_does(api_at: Any) -> None:
    """A price or activation fee above 99,999,999 is a 400 (API.md, Plans); the document's
    maximum was 999,999,999,999, so a client checking its body against it sent it anyway."""
    api: Api = api_at(APRIL)
    doc = document(api)
    body_schema = doc["paths"]["/v1/plans"]["post"]["requestBody"]["content"]["application/json"]
    for too_much in (
        {"name": "Gold", "prices": {"month": 100_000_000}},
        {"name": "Gold", "prices": {"month": 3000}, "activation_fee": 100_000_000},
    ):
        assert api.call("POST", "/v1/plans", too_much).status == 400
        assert list(validator(doc, body_schema["schema"]).iter_errors(too_much)) != [], too_much
    at_the_maximum = {"name": "Gold", "prices": {"month": 99_999_999}}
    assert list(validator(doc, body_schema["schema"]).iter_errors(at_the_maximum)) == []


def test_the_pay_pages_calls_declare_the_503_of_a_busy_database(api_at: Any) -> None:
    """The page's JSON calls read and write the table (the link, its rate count): throttled
    past the SDK's retries they answer 503 `unavailable` like any route; setup-intent's
    declared statuses had no 503."""
    api: Api = api_at(APRIL)
    doc = document(api)
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    with throttled_once(api.env.container.dynamodb, "UpdateItem") as fired:
        busy = pay_call(api, token, "setup-intent")

    assert fired and busy.status == 503, busy
    assert declared_answer_errors(doc, "POST", "/pay/{token}/setup-intent", busy) == []


def test_the_documents_enumerations_are_the_apis(api_at: Any) -> None:
    """An endpoint's `status` is "enabled" or "disabled" (API.md, Events to the platform), as
    the PATCH that sets it says; the answer's schema named any string."""
    schemas = document(api_at(APRIL))["components"]["schemas"]
    endpoint_status = schemas["EndpointOut"]["properties"]["status"]
    patch_status = schemas["UpdateEndpoint"]["properties"]["status"]["anyOf"][0]
    assert endpoint_status["enum"] == patch_status["enum"] == ["enabled", "disabled"]


def test_error_types_and_pay_statuses_are_enumerated_as_api_md_lists_them(api_at: Any) -> None:
    """API.md names every error `type` and the pay page's `status` values; the document named
    any string for both."""
    schemas = document(api_at(APRIL))["components"]["schemas"]
    assert set(schemas["ErrorBody"]["properties"]["type"]["enum"]) == {
        "invalid_request",
        "unauthorized",
        "payment_failed",
        "forbidden",
        "not_found",
        "conflict",
        "rate_limited",
        "internal",
        "unavailable",
    }
    assert set(schemas["PayOut"]["properties"]["status"]["enum"]) == {
        "paid",
        "requires_action",
        "processing",
    }


def test_the_document_names_our_own_failure_codes(api_at: Any) -> None:
    """`failure.code` is Stripe's code or one of ours (API.md, Payments): card_detached,
    no_card_on_account, account_disconnected and not_attempted. The document said only
    "a string", so a client could not learn the codes no Stripe documentation lists."""
    schemas = document(api_at(APRIL))["components"]["schemas"]
    description = schemas["FailureOut"]["properties"]["code"]["description"]
    for code in ("card_detached", "no_card_on_account", "account_disconnected", "not_attempted"):
        assert code in description, description


def test_every_route_declares_the_429_of_the_stages_throttle(api_at: Any) -> None:
    """Above the stage's 2,500 requests/s API Gateway answers any route 429 `rate_limited` in
    the envelope (API.md, Throttling); only the routes with a 429 of their own (the pay page's
    calls, a profile's card and Stripe calls) declared it."""
    doc = document(api_at(APRIL))
    undeclared = [
        f"{method.upper()} {path}"
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "429" not in operation["responses"]
    ]
    assert undeclared == []


def test_the_headers_an_answer_carries_are_declared_for_its_status(api_at: Any) -> None:
    """API.md promises headers a client acts on: `Retry-After` on a 429, a 503 and a 409 that a
    retry can overcome, `Idempotent-Replayed: true` on a replayed answer. The document declared
    no response header at all, so a client built from it never learned when to come back."""
    api: Api = api_at(APRIL)
    doc = document(api)
    plan = {"name": "Gold", "prices": {"month": 3000}}
    first = idempotent_post(api, "/v1/plans", plan, "once")
    replayed = idempotent_post(api, "/v1/plans", plan, "once")
    fingerprint = request_fingerprint("POST", "/v1/plans", {}, json.dumps(plan).encode())
    now = int(api.env.clock.now().timestamp())
    store = api.env.container.idempotency
    assert store.claim(api.community_id, "running", fingerprint, now, 60, 86_400).outcome
    in_progress = idempotent_post(api, "/v1/plans", plan, "running")
    with throttled_once(api.env.container.dynamodb, "PutItem"):
        busy = idempotent_post(api, "/v1/plans", plan, "busy")
    _, sub = failed_subscription(api)
    token = issued_token(api, sub["id"])
    for _ in range(REQUESTS_PER_TOKEN_PER_MINUTE):
        page(api, token)
    limited = pay_call(api, token, "setup-intent")

    assert (first.status, replayed.headers["idempotent-replayed"]) == (201, "true")
    assert (in_progress.status, in_progress.headers["retry-after"]) == (409, "1")
    assert (busy.status, busy.headers["retry-after"]) == (503, "1")
    assert limited.status == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    errors = [
        *declared_answer_errors(doc, "POST", "/v1/plans", first),
        *declared_answer_errors(doc, "POST", "/v1/plans", replayed),
        *declared_answer_errors(doc, "POST", "/v1/plans", in_progress),
        *declared_answer_errors(doc, "POST", "/v1/plans", busy),
        *declared_answer_errors(doc, "POST", "/pay/{token}/setup-intent", limited),
    ]
    assert errors == []
    without_retry_after = Reply(busy.status, busy.body, {"content-type": "application/json"})
    assert declared_answer_errors(doc, "POST", "/v1/plans", without_retry_after) != []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status in {"429", "503"} & set(operation["responses"]):
                header = operation["responses"][status].get("headers", {}).get("Retry-After")
                assert header is not None and header["required"], (method, path, status)
