"""boto3 clients, created on first use and cached per (service, region, endpoint).

All come from one boto3 session per process: a session reads and parses each service's model
once, where a session per client parsed it again for every client (0.2-0.5 s each, paid by every
test that resets the clients). boto3 sessions are not thread-safe: clients are made under the lock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.config import Settings

# A Lambda makes one request at a time; the local API serves requests in threads (a test-clock
# advance runs several at once, webhooks arrive meanwhile), and beyond botocore's 10 pooled
# connections each request opened and dropped a connection of its own.
MAX_POOL_CONNECTIONS = 64

_clients: dict[tuple[str, str, str | None, bool], Any] = {}
_session: Any = None
_lock = threading.Lock()


def aws_client(service: str, settings: Settings) -> Any:
    global _session
    lean = settings.lean_aws_client and settings.aws_endpoint_url is not None
    key = (service, settings.aws_region, settings.aws_endpoint_url, lean)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                import boto3
                from botocore.config import Config

                if _session is None:
                    _session = boto3.session.Session()
                client = _session.client(
                    service,
                    region_name=settings.aws_region,
                    endpoint_url=settings.aws_endpoint_url,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 3},
                        max_pool_connections=MAX_POOL_CONNECTIONS,
                        parameter_validation=not lean,
                    ),
                )
                _clients[key] = client
    return client


def reset_clients() -> None:
    """Forget cached clients (tests switch between moto backends); the session stays."""
    with _lock:
        _clients.clear()
