"""Stores frozen domain dataclasses as DynamoDB maps and reads them back, by their type hints.

Datetimes are stored as exact ISO 8601 strings (microseconds kept), tuples as lists, ints as
exact numbers. Reading uses the dataclass's own annotations, so a field added to the domain
with a default is read from older items without a migration.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from datetime import datetime
from typing import Any

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
