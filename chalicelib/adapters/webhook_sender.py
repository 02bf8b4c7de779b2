"""Delivering one event to a platform's HTTPS endpoint, and the SSRF guard.

- `check_url(url, local=...)`: deployed stages take only `https` URLs whose host resolves to
  public addresses (no private, loopback, link-local, metadata, multicast or reserved ones);
  local and test stages also take `http://127.0.0.1[:port]`. Checked at registration AND
  before every delivery (DNS can change in between).
- `post(url, body, headers)`: one POST given 10 s in all (not 10 s per socket read: a receiver
  that answers a byte at a time is cut off too, so a drainer never holds an endpoint's lease
  past it); redirects are never followed (a 3xx is a failed delivery); keeps the first 1 KiB
  of the answer.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 10.0
KEEP_BYTES = 1024
LOCAL_HOST = "127.0.0.1"
# The instance metadata addresses are link-local / unique-local, named here so the rule reads.
METADATA_ADDRESSES = frozenset({"169.254.169.254", "fd00:ec2::254"})

Resolver = Callable[[str, int], list[str]]


class UnsafeUrl(ValueError):
    """The URL is not one we deliver to (the reason says why)."""


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        address in METADATA_ADDRESSES
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_url(url: str, *, local: bool, resolver: Resolver = resolve) -> None:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not carry credentials.")
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("The URL's port is not valid.") from None
    if local and host == LOCAL_HOST and parts.scheme in ("http", "https"):
        return
    if parts.scheme != "https":
        raise UnsafeUrl("Only https URLs are accepted.")
    if not host:
        raise UnsafeUrl("The URL has no host.")
    try:
        addresses = [host] if _is_ip(host) else resolver(host, port)
    except UnicodeError:
        # The name cannot be a DNS name at all (an empty or over-long label): IDNA refuses it
        # before any lookup.
        raise UnsafeUrl(f"The host {host} is not a valid host name.") from None
    except OSError:
        raise UnsafeUrl(f"The host {host} does not resolve.") from None
    if not addresses:
        raise UnsafeUrl(f"The host {host} does not resolve.")
    for address in addresses:
        if not _public(address):
            raise UnsafeUrl(
                f"The host {host} resolves to a private, link-local or metadata address."
            )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Answer:
    status: int | None
    body: str
    duration_ms: int
    error: str | None

    @property
    def succeeded(self) -> bool:
        return (
            self.status is not None
            and 200 <= self.status < 300
            and self.duration_ms <= TIMEOUT_SECONDS * 1000
        )


def post(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout: float = TIMEOUT_SECONDS
) -> Answer:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    started = time.monotonic()
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    deadline = threading.Timer(timeout, _cut_off, args=(connection,))
    deadline.daemon = True
    deadline.start()
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "membership-billing-webhooks/1",
                **headers,
            },
        )
        response = connection.getresponse()
        kept = response.read(KEEP_BYTES)
        elapsed = int((time.monotonic() - started) * 1000)
        return Answer(response.status, kept.decode("utf-8", "replace"), elapsed, None)
    except (OSError, http.client.HTTPException) as error:
        elapsed = int((time.monotonic() - started) * 1000)
        return Answer(None, "", elapsed, f"{type(error).__name__}: {error}"[:300])
    finally:
        deadline.cancel()
        connection.close()


def _cut_off(connection: http.client.HTTPConnection) -> None:
    """The exchange's time is up: wake the read that waits (it fails; the delivery failed)."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` (receivers/billing_signature.py
    verifies it without this package)."""
    import hashlib
    import hmac

    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"
