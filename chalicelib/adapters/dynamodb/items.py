"""Converting between Python values and DynamoDB's attribute-value format.

Repositories use the low-level client (it supports TransactWriteItems with conditions), so
items are serialized here. Integers stay exact (Decimal in between, never float).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


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


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """A Python dict -> a DynamoDB item. None values are dropped (absent attribute)."""
    return {
        key: _serializer.serialize(_prepare(value))
        for key, value in data.items()
        if value is not None
    }


def to_value(value: Any) -> dict[str, Any]:
    """One Python value -> a DynamoDB attribute value (for expression values)."""
    result: dict[str, Any] = _serializer.serialize(_prepare(value))
    return result


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item -> a Python dict with ints restored."""
    return {key: _restore(_deserializer.deserialize(value)) for key, value in item.items()}
