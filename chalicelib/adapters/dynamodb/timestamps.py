"""RFC 3339 UTC timestamps as stored and shown (`2026-11-22T10:00:00Z`, whole seconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def whole_seconds(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(microsecond=0)


def format_time(when: datetime) -> str:
    return whole_seconds(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
