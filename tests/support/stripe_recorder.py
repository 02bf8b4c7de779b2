"""A tiny HTTP server that stands in for Stripe where localstripe falls short.

It records every request exactly as our Stripe adapter sent it (method, path, headers, the
decoded form body) and answers with the next queued (status, JSON) reply, so tests can check the
request shape (Stripe-Account, application_fee_amount, idempotency key) and make Stripe answer
with rate limits or server errors.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class StripeRecorder:
    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    replies: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def reply(self, status: int, body: dict[str, Any]) -> None:
        self.replies.append((status, body))


@contextmanager
def stripe_recorder() -> Iterator[StripeRecorder]:
    recorder = StripeRecorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            parsed = urllib.parse.urlsplit(self.path)
            form = dict(urllib.parse.parse_qsl(raw or parsed.query, keep_blank_values=True))
            recorder.requests.append(
                RecordedRequest(
                    self.command,
                    parsed.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    form,
                )
            )
            status, body = recorder.replies.pop(0) if recorder.replies else (500, {})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _handle  # noqa: N815
        do_POST = _handle  # noqa: N815

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
