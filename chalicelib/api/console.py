"""The admin console: static files under chalicelib/console/, served with a strict CSP.

The console is a static single-page app that calls only the public /v1 API, so this blueprint
just hands out files. Files are read when requested (never at import: app import stays
lazy; deployed stages keep them per container) and only names found in the console folders
are served, so a path parameter can never
reach outside it. JS and CSS are text, which API Gateway passes through untouched (only
Chalice's binary types are base64-encoded, and the console ships no binary files).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from chalice import Blueprint, Response

from chalicelib.config import LOCAL_STAGES

blueprint = Blueprint(__name__)

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
REAL_STRIPE_JS_URL = "https://js.stripe.com/v3/"
LOCAL_PUBLISHABLE_KEY = "pk_test_local"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}


def _read_folder(folder: str) -> dict[str, str]:
    """Every servable file of one console folder, by name."""
    directory = CONSOLE_DIR / folder if folder else CONSOLE_DIR
    return {
        path.name: path.read_text(encoding="utf-8")
        for path in directory.iterdir()
        if path.is_file() and path.suffix in CONTENT_TYPES
    }


_read_folder_once = cache(_read_folder)


def _files(folder: str) -> dict[str, str]:
    # Deployed: read once per container. Local stages: fresh each time, so edits show at once.
    if os.environ.get("BILLING_STAGE", "local") in LOCAL_STAGES:
        return _read_folder(folder)
    return _read_folder_once(folder)


def stripe_js_url() -> str:
    """Stripe.js for this stage: localstripe's stand-in where Stripe is localstripe."""
    configured = os.environ.get("BILLING_CONSOLE_STRIPE_JS_URL")
    if configured:
        return configured
    api_base = os.environ.get("STRIPE_API_BASE")
    return f"{api_base.rstrip('/')}/js.stripe.com/v3/" if api_base else REAL_STRIPE_JS_URL


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy() -> str:
    """script-src 'self' plus the stage's Stripe.js origin; nothing inline, nothing else."""
    js_origin = _origin(stripe_js_url())
    if js_origin == _origin(REAL_STRIPE_JS_URL):
        # What Stripe.js needs, per Stripe's CSP guide: its script, its frames, its API.
        frames = "https://js.stripe.com https://hooks.stripe.com"
        connect = "'self' https://api.stripe.com"
    else:
        frames = js_origin
        connect = f"'self' {js_origin}"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {js_origin}",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            f"frame-src {frames}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _headers(content_type: str) -> dict[str, str | list[str]]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # The page holds an API key in memory: never let a shared cache keep a copy of anything.
        "Cache-Control": "no-store",
    }


def _file_response(folder: str, name: str) -> Response:
    body = _files(folder).get(name)
    if body is None:
        return Response(
            body=json.dumps(
                {"error": {"type": "not_found", "message": "Not found", "details": []}}
            ),
            status_code=404,
            headers={"Content-Type": "application/json"},
        )
    return Response(body=body, status_code=200, headers=_headers(CONTENT_TYPES[Path(name).suffix]))


@blueprint.route("/console", methods=["GET"])
def console_index() -> Response:
    # Chalice and API Gateway route /console and /console/ here; the page's relative asset
    # URLs need the trailing slash, so send /console to console/ (relative: keeps the stage).
    raw_path = str(blueprint.current_request.context.get("path", ""))
    if not raw_path.endswith("/"):
        return Response(body="", status_code=301, headers={"Location": "console/"})
    return _file_response("", "index.html")


@blueprint.route("/console/{name}", methods=["GET"])
def console_file(name: str) -> Response:
    if name == "config.json":
        config = {
            "stripe_js_url": stripe_js_url(),
            "stripe_publishable_key": os.environ.get("STRIPE_PUBLISHABLE_KEY")
            or (LOCAL_PUBLISHABLE_KEY if os.environ.get("STRIPE_API_BASE") else None),
        }
        return Response(
            body=json.dumps(config), status_code=200, headers=_headers(CONTENT_TYPES[".json"])
        )
    return _file_response("", name)


@blueprint.route("/console/vendor/{name}", methods=["GET"])
def console_vendor_file(name: str) -> Response:
    return _file_response("vendor", name)
