"""Converting between Python values and DynamoDB's attribute-value format.

Repositories use the low-level client (it supports TransactWriteItems with conditions), so
items are serialized here. Integers stay exact (Decimal in between, never float).

The values our items hold (strings, integers, booleans, None, lists and maps of them) are
written and read directly; anything else (sets, bytes, Decimals, integers of more than 38
digits) goes through boto3's TypeSerializer/TypeDeserializer, which give the same answers for
the common values, a value at a time through a chain of type checks: a fifth of the API
process's CPU under a test-clock advance (bench/README.md, "The local stack under load").
tests/unit/test_items.py compares the two.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
# DynamoDB numbers hold 38 significant digits; boto3 refuses more (Inexact), so do we.
_EXACT_DIGITS = 38


def _prepare(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise TypeError("floats are not stored; use integers in minor units or strings")
    if isinstance(value, dict):
        return {key: _prepare(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_prepare(item) for item in value]
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {key: _restore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore(item) for item in value]
    if isinstance(value, set):
        return {_restore(item) for item in value}
    return value


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, int):
        text = str(value)
        if len(text.removeprefix("-")) <= _EXACT_DIGITS:
            return {"N": text}
    elif isinstance(value, dict):
        return {"M": {key: _attribute(item) for key, item in value.items()}}
    elif isinstance(value, list | tuple):
        return {"L": [_attribute(item) for item in value]}
    result: dict[str, Any] = _serializer.serialize(_prepare(value))
    return result


def _python(attribute: dict[str, Any]) -> Any:
    for kind, value in attribute.items():
        if kind == "S" or kind == "BOOL":
            return value
        if kind == "N" and value.isascii() and value.removeprefix("-").isdigit():
            return int(value)
        if kind == "M":
            return {key: _python(item) for key, item in value.items()}
        if kind == "L":
            return [_python(item) for item in value]
        if kind == "NULL":
            return None
        break
    return _restore(_deserializer.deserialize(attribute))


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """A Python dict -> a DynamoDB item. None values are dropped (absent attribute)."""
    return {key: _attribute(value) for key, value in data.items() if value is not None}


def to_value(value: Any) -> dict[str, Any]:
    """One Python value -> a DynamoDB attribute value (for expression values)."""
    return _attribute(value)


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item -> a Python dict with ints restored."""
    return {key: _python(value) for key, value in item.items()}
