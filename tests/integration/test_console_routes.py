"""The console's static files through the Chalice app: content types, CSP, paths and config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client, HTTPResponse

import app as app_module

CONSOLE_DIR = Path(app_module.__file__).resolve().parent / "chalicelib" / "console"


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(app_module.app, stage_name="local") as test_client:
        yield test_client


def header(response: HTTPResponse, name: str) -> str:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return str(headers.get(name.lower(), ""))


def test_console_without_a_trailing_slash_redirects_relatively_so_the_stage_prefix_stays(
    client: Client,
) -> None:
    response = client.http.get("/console")
    assert response.status_code == 301
    assert header(response, "Location") == "console/"


@pytest.mark.parametrize(
    ("path", "content_type", "source"),
    [
        ("/console/", "text/html; charset=utf-8", "index.html"),
        ("/console/app.js", "text/javascript; charset=utf-8", "app.js"),
        ("/console/console.css", "text/css; charset=utf-8", "console.css"),
        (
            "/console/vendor/preact-htm.mjs",
            "text/javascript; charset=utf-8",
            "vendor/preact-htm.mjs",
        ),
        ("/console/vendor/pico.min.css", "text/css; charset=utf-8", "vendor/pico.min.css"),
        (
            "/console/vendor/chart.umd.min.js",
            "text/javascript; charset=utf-8",
            "vendor/chart.umd.min.js",
        ),
    ],
)
def test_every_file_comes_with_its_text_content_type_and_the_strict_headers(
    client: Client, path: str, content_type: str, source: str
) -> None:
    response = client.http.get(path)
    assert response.status_code == 200
    assert header(response, "Content-Type") == content_type
    assert response.body.decode("utf-8") == (CONSOLE_DIR / source).read_text(encoding="utf-8")
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert header(response, "Cache-Control") == "no-store"
    assert "script-src 'self' " in header(response, "Content-Security-Policy")


@pytest.mark.parametrize(
    "path",
    ["/console/nothing.js", "/console/vendor/app.js", "/console/vendor/..%2Fapp.js", "/console/.."],
)
def test_only_files_of_the_console_folders_are_served(client: Client, path: str) -> None:
    response = client.http.get(path)
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["type"] == "not_found"


def test_no_file_has_inline_script_or_style_for_the_csp_to_refuse() -> None:
    index = (CONSOLE_DIR / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in index and "<style" not in index and " style=" not in index
    for source in CONSOLE_DIR.glob("*.js"):
        text = source.read_text(encoding="utf-8")
        assert " style=" not in text, source.name
        assert "localStorage.setItem" not in text and "document.cookie" not in text, source.name


def test_locally_stripe_js_is_localstripe_s_stand_in_and_the_csp_names_its_origin(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:8420")
    monkeypatch.delenv("STRIPE_PUBLISHABLE_KEY", raising=False)
    response = client.http.get("/console/config.json")
    assert json.loads(response.body) == {
        "stripe_js_url": "http://127.0.0.1:8420/js.stripe.com/v3/",
        "stripe_publishable_key": "pk_test_local",
    }
    policy = header(client.http.get("/console/"), "Content-Security-Policy")
    directives = dict(part.split(" ", 1) for part in policy.split("; "))
    assert directives == {
        "default-src": "'none'",
        "script-src": "'self' http://127.0.0.1:8420",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": "'self' http://127.0.0.1:8420",
        "frame-src": "http://127.0.0.1:8420",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }


def test_deployed_stripe_js_is_stripe_s_own_with_the_origins_it_needs(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_live_example")
    config = json.loads(client.http.get("/console/config.json").body)
    assert config == {
        "stripe_js_url": "https://js.stripe.com/v3/",
        "stripe_publishable_key": "pk_live_example",
    }
    policy = header(client.http.get("/console/app.js"), "Content-Security-Policy")
    assert "script-src 'self' https://js.stripe.com;" in policy
    assert "connect-src 'self' https://api.stripe.com;" in policy
    assert "frame-src https://js.stripe.com https://hooks.stripe.com;" in policy


def test_api_gateway_passes_every_console_file_through_as_text() -> None:
    from chalicelib.api.console import CONTENT_TYPES

    served = {content_type.split(";")[0] for content_type in CONTENT_TYPES.values()}
    assert served.isdisjoint(app_module.app.api.binary_types)
    shipped = {path.suffix for path in CONSOLE_DIR.rglob("*") if path.is_file()}
    assert shipped <= set(CONTENT_TYPES)
