"""A real local HTTP receiver of platform events (127.0.0.1, a free port) for the tests.

It records every POST (headers and raw body) and answers 200; `down()` closes the port (the
sender sees connection refused) and `up()` opens the same port again.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.local.stack import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    raw: bytes

    @property
    def event(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.raw)
        return body


class Receiver:
    def __init__(self, path: str = "/hooks/billing") -> None:
        self.port = free_port()
        self.path = path
        self.received: list[Received] = []
        self.answer_status = 200
        # Statuses for the next requests, in order; then `answer_status` again.
        self.next_statuses: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def up(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with owner._lock:
                    owner.received.append(Received(dict(self.headers.items()), raw))
                    status = (
                        owner.next_statuses.pop(0) if owner.next_statuses else owner.answer_status
                    )
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"thanks " * 400)  # more than the 1 KiB that is kept

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.received]


def in_subject_order(events: list[dict[str, Any]]) -> bool:
    """Each subject's events arrive with growing `sequence` (ignoring exact repeats)."""
    last: dict[str, int] = {}
    for event in events:
        subject, sequence = event["subject_id"], event["sequence"]
        if sequence < last.get(subject, -1):
            return False
        last[subject] = sequence
    return True


def rebuild_access(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A platform's access list from `access.*` events alone: the latest body per profile by
    sequence (stale and repeated events dropped)."""
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for event in events:
        if not event["type"].startswith("access."):
            continue
        profile_id = event["subject_id"]
        if event["sequence"] > latest.get(profile_id, (0, {}))[0]:
            latest[profile_id] = (event["sequence"], event["data"]["object"])
    return {profile_id: body for profile_id, (_, body) in latest.items()}
