"""API-key authentication with Chalice's built-in authorizer (it also runs under chalice local).

The authorizer resolves the bearer key to a principal and passes it on in the request context;
it allows every route so that the route wrapper can answer with API.md's error envelope:
401 for an unknown key, 403 for the wrong kind of key. (A request with no Authorization header
at all never reaches the authorizer: API Gateway answers 401 itself.) TTL 0: a revoked key is
refused on the very next request.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from chalice import AuthResponse, Blueprint
from chalice.app import AuthRequest, Request

from chalicelib.bootstrap import container
from chalicelib.observability import logger

blueprint = Blueprint(__name__)

ANONYMOUS = "anonymous"
PLATFORM = "platform"
COMMUNITY = "community"
# The key could not be checked (DynamoDB throttled, a network error): the route answers 503.
# An authorizer that raises makes API Gateway answer a bare 500 instead.
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Principal:
    kind: str  # "platform" | "community" | "anonymous" | "unavailable"
    community_id: str | None = None
    key_id: str | None = None

    def to_context(self) -> dict[str, str]:
        context = {"kind": self.kind}
        if self.community_id:
            context["community_id"] = self.community_id
        if self.key_id:
            context["key_id"] = self.key_id
        return context


def bearer_token(header_value: str | None) -> str | None:
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def resolve_principal(token: str | None) -> Principal:
    """Map a presented key to who is calling. Unknown keys are anonymous."""
    if not token:
        return Principal(ANONYMOUS)
    platform_key = container().secrets.get().platform_api_key
    if platform_key and hmac.compare_digest(token.encode(), platform_key.encode()):
        return Principal(PLATFORM)
    return resolve_community_key(token)


def resolve_community_key(token: str) -> Principal:
    """Community keys are resolved by the API-key service (issue 3)."""
    resolver: Any = getattr(container(), "api_keys", None)
    if resolver is None:
        return Principal(ANONYMOUS)
    found = resolver.resolve(token)
    if found is None:
        return Principal(ANONYMOUS)
    community_id, key_id = found
    return Principal(COMMUNITY, community_id=community_id, key_id=key_id)


@blueprint.authorizer(ttl_seconds=0)
def api_key_authorizer(auth_request: AuthRequest) -> AuthResponse:
    try:
        principal = resolve_principal(bearer_token(auth_request.token))
    except Exception:
        logger.exception("api_key_check_failed")
        principal = Principal(UNAVAILABLE)
    return AuthResponse(routes=["*"], principal_id=principal.kind, context=principal.to_context())


def principal_from_request(request: Request) -> Principal:
    context = (request.context or {}).get("authorizer") or {}
    kind = context.get("kind", ANONYMOUS)
    return Principal(kind, context.get("community_id"), context.get("key_id"))
