"""Credentials a response shows once are never kept by the idempotency store (API.md,
Conventions): a pay-now link's URL (its token), a SetupIntent's client secret and a webhook
endpoint's signing secret, like an API key's secret (tests/integration/test_secrets_at_rest.py).
A replay answers the same body with that field null."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from chalicelib.api.models import SHOWN_ONCE
from tests.integration.conftest import stored_idempotency_items
from tests.integration.test_payment_links import failed_subscription
from tests.support.billing_api import Api, api_at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def post_with_key(api: Api, path: str, body: Any, key: str) -> tuple[int, Any, dict[str, str]]:
    response = api.env.client.http.post(
        path,
        headers={
            "Authorization": f"Bearer {api.key}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
        body=json.dumps(body),
    )
    headers = {name.lower(): value for name, value in response.headers.items()}
    return response.status_code, json.loads(response.body), headers


def test_a_pay_now_links_token_is_not_kept_and_a_replay_answers_url_null(api_at: Any) -> None:
    """API.md, Dunning: the token is stored only as its SHA-256; the idempotency store too."""
    api: Api = api_at(APRIL)
    _, sub = failed_subscription(api)
    path = f"/v1/subscriptions/{sub['id']}/payment-link"
    status, first, _ = post_with_key(api, path, {}, "link-once")
    assert status == 201, first
    token = first["url"].rsplit("/", 1)[1]
    assert len(token) >= 43

    assert token not in json.dumps(stored_idempotency_items())
    status, replay, headers = post_with_key(api, path, {}, "link-once")
    assert (status, headers["idempotent-replayed"]) == (201, "true")
    assert replay == {"url": None, "expires_at": first["expires_at"]}
    # The link itself still works: only the stored answer lost it.
    assert api.env.container.payment_links.open(token, api.env.clock.now()).state == "payable"


def test_a_setup_intents_client_secret_is_not_kept(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    ada = api.customer("Ada", card=None)
    path = f"/v1/profiles/{ada['id']}/setup-intents"
    status, first, _ = post_with_key(api, path, {}, "setup-once")
    assert status == 201, first
    assert first["client_secret"].startswith("seti_")

    assert first["client_secret"] not in json.dumps(stored_idempotency_items())
    status, replay, headers = post_with_key(api, path, {}, "setup-once")
    assert (status, headers["idempotent-replayed"], replay) == (
        201,
        "true",
        {"client_secret": None},
    )


def test_a_webhook_endpoints_signing_secret_is_not_kept(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    body = {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
    status, first, _ = post_with_key(api, "/v1/webhook-endpoints", body, "endpoint-once")
    assert status == 201, first
    assert first["secret"].startswith("whsec_")

    assert first["secret"] not in json.dumps(stored_idempotency_items())
    status, replay, headers = post_with_key(api, "/v1/webhook-endpoints", body, "endpoint-once")
    assert (status, headers["idempotent-replayed"]) == (201, "true")
    assert replay == {**first, "secret": None}


def test_every_response_field_holding_a_credential_is_marked_shown_once() -> None:
    """The store redacts what the response models mark; a credential field left unmarked would
    be kept in plain text. Every field named like a secret, and the pay-now link, is marked."""
    from chalicelib.api.blueprints import http_blueprints
    from chalicelib.api.routing import ROUTES, Auth

    http_blueprints()  # imports every route module, which fills ROUTES
    assert len(ROUTES) > 50
    unmarked: list[str] = []
    for spec in ROUTES:
        if spec.auth is Auth.NONE:
            continue  # no Idempotency-Key there (the pay page's JSON calls, the webhook)
        for model in _models_in(spec.response):
            for name, field in model.model_fields.items():
                credential = "secret" in name or (model.__name__, name) == ("PaymentLinkOut", "url")
                extra = field.json_schema_extra
                marked = isinstance(extra, dict) and extra.get(SHOWN_ONCE) is True
                if credential and not marked:
                    unmarked.append(f"{spec.method} {spec.path}: {model.__name__}.{name}")
    assert unmarked == []


def _models_in(model: type[BaseModel] | None) -> list[type[BaseModel]]:
    if model is None:
        return []
    found = [model]
    for field in model.model_fields.values():
        for inner in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                found += _models_in(inner)
    return found
