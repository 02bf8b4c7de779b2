"""Opaque, type-prefixed identifiers (API.md: com_, plan_, prof_, sub_, pay_, ref_, key_)."""

from __future__ import annotations

import secrets

PREFIXES = ("com", "plan", "prof", "sub", "pay", "ref", "key", "evt")


def new_id(prefix: str) -> str:
    """A new id: `<prefix>_` + 20 random base32-ish characters (sortable by nothing)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{secrets.token_hex(10)}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(f"{prefix}_") and len(value) > len(prefix) + 1
