"""`Idempotency-Key` on every POST, applied by the route wrapper (API.md, Conventions).

Same key + same request within 24 h: the first response is replayed with
`Idempotent-Replayed: true`. Same key + another request (method, path, query or body): 409.
A second request arriving while the first still runs: 409 (never a second execution).
Keys are scoped per community; platform-key calls share one platform scope. Routes without
auth (the Stripe webhook) are not covered: an anonymous scope would let callers see each
other's responses. Responses are stored for 2xx and 4xx except 400 (a 400 changed nothing, so
the caller may fix the body and retry with the same key); 5xx and crashes release the key.
A credential shown once (a response field its model marks `shown_once`: a new API key's
`secret`, a pay-now link's `url`, a SetupIntent's `client_secret`) is stored as null: a replay
answers the same body with that field null (API.md, Conventions).

Why not Powertools' idempotency utility: it imports boto3 at import time (~180 ms of cold
start on every route, including GETs), keys records by a hash of the event in its own layout
rather than under the caller's community, takes time from the wall clock (our 24 h must follow
the test clock), and caches a function's return value, whereas we must store the final HTTP
response (status, headers) and skip 400/5xx. The store below is ~100 lines on our one table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice import Response

from chalicelib.api.errors import error_response
from chalicelib.domain.errors import InvalidRequest
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.adapters.dynamodb.idempotency import IdempotencyStore

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
TTL_SECONDS = 24 * 60 * 60
# A claim older than this while still "in progress" belonged to a request that died; a retry
# may then take the key over. Must exceed the Lambda timeout (30 s, .chalice/config.json).
LOCK_SECONDS = 60


def idempotency_key(request: Any) -> str | None:
    headers = request.headers or {}
    if HEADER not in headers:
        return None
    key = str(headers[HEADER])
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidRequest.for_field(HEADER, f"Must be 1 to {MAX_KEY_LENGTH} characters.")
    return key


def request_fingerprint(method: str, path: str, query: dict[str, str], raw_body: bytes) -> str:
    """A hash of what the request asks for; JSON bodies are compared by content."""
    try:
        body: Any = json.loads(raw_body) if raw_body.strip() else None
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        canonical = raw_body.hex()
    text = json.dumps([method, path, sorted(query.items()), canonical], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def stored_body(body: Any, redact: Callable[[Any], Any]) -> str:
    """The response body as the idempotency store keeps it: JSON, `redact`ed."""
    text = body if isinstance(body, str) else json.dumps(body)
    try:
        decoded = json.loads(text) if text else None
    except ValueError:
        return text
    if decoded is None:
        return text
    return json.dumps(redact(decoded))


def kept_status(status: int) -> bool:
    """A status whose answers may be kept as a key's: not 400 (nothing changed; fix the body
    and retry), not a retryable refusal (429, 5xx)."""
    return status < 500 and status not in (400, 429)


def _should_store(response: Response) -> bool:
    """Only final answers are kept: a kept status without Retry-After (a lost race, a busy key)."""
    retryable = any(str(name).lower() == "retry-after" for name in response.headers or {})
    return kept_status(response.status_code) and not retryable


def run_idempotent(
    store: IdempotencyStore,
    community_id: str | None,
    now: int,
    key: str,
    fingerprint: str,
    execute: Callable[[], Response],
    redact: Callable[[Any], Any],
) -> Response:
    """`execute` once per (community, key): `now` in epoch seconds; platform-key calls
    (no community) share one scope. The answer is stored as `redact` leaves its JSON body
    (credentials shown once are never stored)."""
    from chalicelib.adapters.dynamodb.idempotency import PLATFORM_SCOPE, StoredResponse

    scope = community_id or PLATFORM_SCOPE
    claim = store.claim(scope, key, fingerprint, now, LOCK_SECONDS, TTL_SECONDS)
    if claim.outcome == "mismatch":
        return error_response("conflict", "This Idempotency-Key was used with another request.", [])
    if claim.outcome == "in_progress":
        return error_response(
            "conflict",
            "A request with this Idempotency-Key is still in progress; retry later.",
            headers={"Retry-After": "1"},
        )
    if claim.outcome == "replay":
        stored = claim.response
        assert stored is not None
        return Response(
            body=stored.body,
            status_code=stored.status,
            headers={**stored.headers, REPLAYED_HEADER: "true"},
        )
    try:
        response = execute()
    except BaseException:
        store.release(scope, key, fingerprint)
        raise
    if not _should_store(response):
        store.release(scope, key, fingerprint)
        return response
    body = stored_body(response.body, redact)
    headers = {str(k): str(v) for k, v in (response.headers or {}).items()}
    try:
        store.complete(scope, key, fingerprint, StoredResponse(response.status_code, headers, body))
    except Exception:
        # The work is done; answer it. The claim stays "in progress" until its lock runs out,
        # so a retry meanwhile gets 409 rather than a second execution.
        logger.exception("idempotency_record_not_stored")
    return response
