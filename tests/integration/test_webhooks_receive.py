"""POST /webhooks/stripe through the HTTP route: verification, storage, de-duplication.

Events are built and signed here as Stripe builds and signs them (tests/support/stripe_events.py);
AWS is moto in-process.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.conftest import Env
from tests.support import stripe_events as se

SECRET = "whsec_integration"  # the env fixture's STRIPE_WEBHOOK_SECRET


def post(env: Env, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = env.client.http.post("/webhooks/stripe", body=body, headers=headers)
    return response.status_code, json.loads(response.body or b"{}")


def deliver(env: Env, payload: dict[str, Any], secret: str = SECRET) -> tuple[int, dict[str, Any]]:
    body = se.body_of(payload)
    return post(env, body, se.signed_headers(body, secret))


def stored_items(env: Env) -> list[dict[str, Any]]:
    """Every webhook-event item in the table (a test-only look at the whole table)."""
    ddb = env.container.dynamodb
    items = ddb.scan(TableName=env.settings.table_name)["Items"]
    return [i for i in items if i["pk"]["S"].startswith("WHEVT#")]


def get_events(env: Env, query: str = "") -> dict[str, Any]:
    response = env.client.http.get(f"/v1/webhook-events{query}", headers=env.platform_headers())
    assert response.status_code == 200, response.body
    result: dict[str, Any] = json.loads(response.body)
    return result


def test_an_unhandled_event_type_is_stored_as_ignored_and_answered_200(env: Env) -> None:
    payload = se.event("customer.created", {"id": "cus_1", "object": "customer"})
    status, body = deliver(env, payload)
    assert status == 200
    assert body == {"received": True, "id": payload["id"], "result": "ignored"}
    listed = get_events(env)["data"]
    assert [e["id"] for e in listed] == [payload["id"]]
    event = listed[0]
    assert event["status"] == "ignored"
    assert event["type"] == "customer.created"
    assert event["payload"] == payload
    assert event["processed_at"] is not None
    assert "not handled" in event["error"]
    [item] = stored_items(env)
    # Kept with a TTL that outlives Stripe's 30 days of events.
    assert int(item["expires_at"]["N"]) > env.clock.now().timestamp() + 40 * 86400


def test_the_same_event_twice_is_a_duplicate_the_second_time(env: Env) -> None:
    payload = se.event("customer.updated", {"id": "cus_2", "object": "customer"})
    assert deliver(env, payload)[1]["result"] == "ignored"
    status, body = deliver(env, payload)
    assert (status, body["result"]) == (200, "duplicate")
    assert len(stored_items(env)) == 1


def test_either_configured_secret_verifies_during_rotation(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_new")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET_PREVIOUS", "whsec_old")
    old = se.event("customer.created", {"id": "cus_3"})
    new = se.event("customer.created", {"id": "cus_4"})
    assert deliver(env, old, secret="whsec_old")[0] == 200
    assert deliver(env, new, secret="whsec_new")[0] == 200
    assert deliver(env, se.event("customer.created", {"id": "c"}), secret=SECRET)[0] == 400
    assert len(stored_items(env)) == 2


def _bad_deliveries() -> list[tuple[str, bytes, dict[str, str], str]]:
    good = se.event("payment_intent.succeeded", {"id": "pi_1", "metadata": {}})
    body = se.body_of(good)
    headers = se.signed_headers(body, SECRET)
    stale = se.signed_headers(body, SECRET, timestamp=int(time.time()) - 301)
    future_ok_format = dict(headers)
    no_sig = {k: v for k, v in headers.items() if k != "Stripe-Signature"}
    not_json = b"{not json"
    array = b"[1, 2]"
    no_id = se.body_of({k: v for k, v in good.items() if k != "id"})
    no_type = se.body_of({k: v for k, v in good.items() if k != "type"})
    no_object = se.body_of({**good, "data": {}})
    bad_account = se.body_of({**good, "account": 42})
    latin1 = b'{"id": "evt_\xe9"}'
    cases = [
        ("missing signature", body, no_sig, "Stripe-Signature"),
        ("empty signature", body, {**headers, "Stripe-Signature": ""}, "Stripe-Signature"),
        ("garbage header", body, {**headers, "Stripe-Signature": "nonsense"}, "Stripe-Signature"),
        ("timestamp only", body, {**headers, "Stripe-Signature": "t=123"}, "Stripe-Signature"),
        ("wrong secret", body, se.signed_headers(body, "whsec_other"), "Stripe-Signature"),
        ("stale timestamp", body, stale, "Stripe-Signature"),
        ("body changed after signing", body + b" ", future_ok_format, "Stripe-Signature"),
        (
            "v0 scheme only",
            body,
            {**headers, "Stripe-Signature": headers["Stripe-Signature"].replace("v1=", "v0=")},
            "Stripe-Signature",
        ),
        ("malformed json", not_json, se.signed_headers(not_json, SECRET), "body"),
        ("json array", array, se.signed_headers(array, SECRET), "body"),
        ("no id", no_id, se.signed_headers(no_id, SECRET), "id"),
        ("no type", no_type, se.signed_headers(no_type, SECRET), "type"),
        ("no data.object", no_object, se.signed_headers(no_object, SECRET), "data.object"),
        ("account not a string", bad_account, se.signed_headers(bad_account, SECRET), "account"),
        ("not utf-8", latin1, se.signed_headers(latin1, SECRET), "body"),
        ("empty body", b"", se.signed_headers(b"", SECRET), "body"),
    ]
    return cases


@pytest.mark.parametrize("case", [c[0] for c in _bad_deliveries()])
def test_bad_input_is_400_naming_the_problem_and_nothing_is_stored(env: Env, case: str) -> None:
    # Signed when the test runs, not when pytest collects it: in a long run a signature made at
    # collection would be past the 300 s tolerance and fail for the wrong reason.
    _, body, headers, field = next(c for c in _bad_deliveries() if c[0] == case)
    status, answer = post(env, body, headers)
    assert status == 400, (case, answer)
    assert answer["error"]["type"] == "invalid_request"
    assert [d["field"] for d in answer["error"]["details"]] == [field]
    assert stored_items(env) == []


def test_a_timestamp_just_inside_the_tolerance_is_accepted(env: Env) -> None:
    payload = se.event("customer.created", {"id": "cus_5"})
    body = se.body_of(payload)
    status, _ = post(env, body, se.signed_headers(body, SECRET, int(time.time()) - 280))
    assert status == 200


def test_list_filters_by_status_and_type_newest_first_with_cursor_paging(env: Env) -> None:
    from datetime import timedelta

    ids = []
    for n in range(5):
        env.clock.advance(timedelta(seconds=1))
        kind = "customer.created" if n % 2 == 0 else "invoice.paid"
        payload = se.event(kind, {"id": f"obj_{n}"})
        deliver(env, payload)
        ids.append(payload["id"])
    newest_first = list(reversed(ids))
    assert [e["id"] for e in get_events(env)["data"]] == newest_first
    assert [e["id"] for e in get_events(env, "?type=invoice.paid")["data"]] == [ids[3], ids[1]]
    assert [e["id"] for e in get_events(env, "?status=ignored&type=customer.created")["data"]] == [
        ids[4],
        ids[2],
        ids[0],
    ]
    assert get_events(env, "?status=failed")["data"] == []
    seen: list[str] = []
    query = "?limit=2"
    while True:
        page = get_events(env, query)
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        query = f"?limit=2&starting_after={page['next_cursor']}"
    assert seen == newest_first


@pytest.mark.parametrize(
    "query",
    ["?status=done", "?limit=0", "?limit=101", "?starting_after=abc", "?type=Bad Type", "?x=1"],
)
def test_list_rejects_bad_query_parameters(env: Env, query: str) -> None:
    response = env.client.http.get(f"/v1/webhook-events{query}", headers=env.platform_headers())
    assert response.status_code == 400, response.body


def test_a_cursor_from_another_filter_is_refused(env: Env) -> None:
    for n in range(3):
        deliver(env, se.event("customer.created", {"id": f"c{n}"}))
    cursor = get_events(env, "?limit=1")["next_cursor"]
    response = env.client.http.get(
        f"/v1/webhook-events?status=ignored&starting_after={cursor}",
        headers=env.platform_headers(),
    )
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["details"][0]["field"] == "starting_after"


def test_event_routes_need_the_platform_key(env: Env) -> None:
    assert env.client.http.get("/v1/webhook-events").status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert env.client.http.get("/v1/webhook-events", headers=bad).status_code == 401
    assert env.client.http.post("/v1/webhook-events/evt_1/replay", headers=bad).status_code == 401


def test_replaying_an_unknown_event_is_404(env: Env) -> None:
    response = env.client.http.post(
        "/v1/webhook-events/evt_missing/replay", headers=env.platform_headers()
    )
    assert response.status_code == 404


def test_replaying_an_event_that_is_not_failed_changes_nothing(env: Env) -> None:
    payload = se.event("customer.created", {"id": "cus_9"})
    deliver(env, payload)
    response = env.client.http.post(
        f"/v1/webhook-events/{payload['id']}/replay", headers=env.platform_headers()
    )
    assert response.status_code == 200
    assert json.loads(response.body)["status"] == "ignored"


def test_an_event_larger_than_a_dynamodb_item_allows_inline_is_kept_whole(env: Env) -> None:
    lines = [{"id": f"il_{n}", "description": "Gold membership " * 8} for n in range(2500)]
    payload = se.event("invoice.finalized", {"id": "in_big", "lines": {"data": lines}})
    assert len(se.body_of(payload)) > 400_000
    status, body = deliver(env, payload)
    assert (status, body["result"]) == (200, "ignored")
    [stored] = get_events(env, "?type=invoice.finalized")["data"]
    assert stored["payload"] == payload


def test_a_page_of_big_events_ends_early_and_the_cursor_goes_on(env: Env) -> None:
    from chalicelib.adapters.dynamodb.webhook_events import WebhookEventRepository

    ids = []
    for n in range(3):
        payload = se.event("invoice.created", {"id": f"in_{n}", "memo": "x" * 1500})
        deliver(env, payload)
        ids.append(payload["id"])
    repository = WebhookEventRepository(
        env.container.dynamodb, env.settings.table_name, env.container.cursors, max_page_bytes=4000
    )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        events, page = repository.list_page(
            status=None, event_type="invoice.created", limit=10, cursor=cursor
        )
        pages += 1
        seen += [e.id for e in events]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids) and len(seen) == 3
    assert pages == 2
