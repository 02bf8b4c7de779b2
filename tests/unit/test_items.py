"""adapters/dynamodb/items.py writes and reads common values directly: the same attribute
values, and the same Python values back, as boto3's TypeSerializer/TypeDeserializer (with
integers restored from Decimals), for every value an item can hold."""

from __future__ import annotations

from decimal import Decimal, Inexact, Rounded
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.adapters.dynamodb.items import _prepare, _restore, from_item, to_item, to_value

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def boto3_item(data: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _serializer.serialize(_prepare(value))
        for key, value in data.items()
        if value is not None
    }


def boto3_values(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _restore(_deserializer.deserialize(value)) for key, value in item.items()}


BIG = 10**38  # 39 digits: more than a DynamoDB number holds
scalars = (
    st.text()
    | st.booleans()
    | st.none()
    | st.integers(min_value=-(BIG - 1), max_value=BIG - 1)
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=2, max_value=10**9, min_value=-(10**9)
    )
    | st.binary(max_size=8)
    | st.sets(st.text(max_size=4), min_size=1, max_size=3)
    | st.sets(st.integers(-1000, 1000), min_size=1, max_size=3)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
items = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=6)


@settings(max_examples=200, deadline=None)
@given(items)
def test_items_are_written_as_boto3_writes_them(data: dict[str, Any]) -> None:
    assert to_item(data) == boto3_item(data)


@settings(max_examples=200, deadline=None)
@given(items)
def test_items_are_read_back_as_boto3_reads_them(data: dict[str, Any]) -> None:
    stored = boto3_item(data)
    assert from_item(stored) == boto3_values(stored)


@pytest.mark.parametrize(
    "number", ["0", "-0", "007", "-12", "12.50", "1E+3", "12.0", "-0.5", str(BIG - 1)]
)
def test_numbers_as_dynamodb_writes_them_read_as_boto3_reads_them(number: str) -> None:
    stored = {"n": {"N": number}}
    assert from_item(stored) == boto3_values(stored)
    assert type(from_item(stored)["n"]) is type(boto3_values(stored)["n"])


def test_what_boto3_refuses_is_refused() -> None:
    with pytest.raises(TypeError, match="floats are not stored"):
        to_item({"amount": 1.5})
    for too_many_digits in (BIG, -BIG, 10**40):
        with pytest.raises((Inexact, Rounded)):
            to_value(too_many_digits)


def test_binary_sets_and_decimals_keep_their_boto3_types() -> None:
    stored = to_item({"b": b"\x00", "ss": {"a"}, "ns": {1, 2}, "d": Decimal("1.25")})
    assert stored == {
        "b": {"B": b"\x00"},
        "ss": {"SS": ["a"]},
        "ns": {"NS": ["1", "2"]} if stored["ns"]["NS"][0] == "1" else {"NS": ["2", "1"]},
        "d": {"N": "1.25"},
    }
    back = from_item(stored)
    assert back == {"b": Binary(b"\x00"), "ss": {"a"}, "ns": {1, 2}, "d": Decimal("1.25")}
