"""boto3 clients, created on first use and cached per (service, region, endpoint)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.config import Settings

_clients: dict[tuple[str, str, str | None], Any] = {}
_lock = threading.Lock()


def aws_client(service: str, settings: Settings) -> Any:
    key = (service, settings.aws_region, settings.aws_endpoint_url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                import boto3
                from botocore.config import Config

                client = boto3.session.Session().client(
                    service,
                    region_name=settings.aws_region,
                    endpoint_url=settings.aws_endpoint_url,
                    config=Config(retries={"mode": "standard", "max_attempts": 3}),
                )
                _clients[key] = client
    return client


def reset_clients() -> None:
    """Forget cached clients (tests switch between moto backends)."""
    with _lock:
        _clients.clear()
