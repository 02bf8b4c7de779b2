"""How values are stored in item attributes: timestamps, JSON packed into one string, and
frozen domain dataclasses as maps (read back by their type hints).

- Timestamps shown and indexed: RFC 3339 UTC, whole seconds (`2026-11-22T10:00:00Z`).
- Packed JSON: one string attribute, zlib-compressed (base64, prefixed) when large. A
  subscription of 1,000 members (twice while a charge is in flight) is ~400 KB of JSON, and a
  payment adding 1,000 members carries ~2,000 lines: DynamoDB's item limit is 400 KB. Above
  `COMPRESS_ABOVE` the text is stored as `z1:` + base64(zlib(json)); reads take both forms, so
  items written before stay readable.
- Dataclasses: datetimes as exact ISO 8601 strings (microseconds kept), tuples as lists, ints as
  exact numbers. Reading uses the dataclass's own annotations, so a field added to the domain
  with a default is read from older items without a migration.
"""

from __future__ import annotations

import base64
import collections.abc
import dataclasses
import json
import types
import typing
import zlib
from datetime import UTC, datetime
from typing import Any


# --- timestamps -------------------------------------------------------------------------------
def whole_seconds(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(microsecond=0)


def format_time(when: datetime) -> str:
    return whole_seconds(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- JSON packed into one string attribute ----------------------------------------------------
COMPRESS_ABOVE = 16_384
_PACKED = "z1:"


def pack_json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    if len(text) <= COMPRESS_ABOVE:
        return text
    return _PACKED + base64.b64encode(zlib.compress(text.encode(), 6)).decode("ascii")


def unpack_json(data: str) -> Any:
    if data.startswith(_PACKED):
        return json.loads(zlib.decompress(base64.b64decode(data[len(_PACKED) :])))
    return json.loads(data)


# --- domain dataclasses as maps ---------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    return value


def _hints(cls: type) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        found = typing.get_type_hints(cls)
        _HINTS[cls] = found
    return found


def decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(options) == 1:
            return decode(options[0], value)
        for option in options:
            if option is type(value) or (option is str and isinstance(value, str)):
                return value
        return value
    if origin is typing.Literal or hint is Any:
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        return tuple(decode(args[0], item) for item in value)
    if origin is list:
        (arg,) = typing.get_args(hint)
        return [decode(arg, item) for item in value]
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        args = typing.get_args(hint)
        value_hint = args[1] if len(args) == 2 else Any
        return {key: decode(value_hint, item) for key, item in value.items()}
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is int:
        return int(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        names = {f.name for f in dataclasses.fields(hint)}
        return hint(**{k: decode(hints[k], v) for k, v in value.items() if k in names})
    if typing.get_origin(hint) is None and isinstance(hint, type | str):
        return value
    return value
