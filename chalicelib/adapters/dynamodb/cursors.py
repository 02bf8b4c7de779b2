"""Opaque, signed list cursors and a generic "one page of a Query" helper.

A cursor is `base64url(json) "." base64url(hmac-sha256)[:22]`. The JSON holds the position
(a DynamoDB key, or any small dict of strings) and the *scope* it was issued for (the index
and partition it pages through). Decoding checks the signature, the structure and the scope,
so a tampered, truncated or foreign cursor (another list, another community) is a 400 naming
`starting_after`, never a 500 and never a read outside the caller's partition.

Usage (any repository):

    page = query_page(client, table, codec, scope=f"plans:{cid}", index="gsi1",
                      key_condition="gsi1pk = :pk", values={":pk": to_value(pk)},
                      limit=query.limit, cursor=query.starting_after, newest_first=True)
    page.items        # deserialized items (ints exact)
    page.has_more, page.next_cursor
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.dynamodb.items import from_item
from chalicelib.adapters.dynamodb.schema import GSI_KEYS, PARTITION_KEY, SORT_KEY
from chalicelib.domain.errors import InvalidRequest

CURSOR_FIELD = "starting_after"
MAX_CURSOR_CHARS = 2048
_SIGNATURE_CHARS = 22  # 132 bits of HMAC-SHA256
# A Query with a FilterExpression may return fewer items than asked; read at most this many
# pages before handing back a (possibly short) page with a cursor.
MAX_READS_PER_PAGE = 10


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bad_cursor() -> InvalidRequest:
    return InvalidRequest.for_field(CURSOR_FIELD, "The cursor is not valid for this list.")


class CursorCodec:
    """Signs and checks cursors. The key is derived from a deployment secret."""

    def __init__(self, signing_key: bytes) -> None:
        self._key = signing_key

    @classmethod
    def from_secret(cls, secret: str) -> CursorCodec:
        return cls(hmac.new(secret.encode(), b"membership-billing/cursor/v1", "sha256").digest())

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return _b64encode(digest)[:_SIGNATURE_CHARS]

    def encode(self, scope: str, position: Mapping[str, str]) -> str:
        body = json.dumps({"s": scope, "p": dict(position)}, separators=(",", ":"), sort_keys=True)
        payload = _b64encode(body.encode())
        return f"{payload}.{self._sign(payload)}"

    def decode(self, scope: str, cursor: str) -> dict[str, str]:
        """The position stored in `cursor`; InvalidRequest (400) for anything else."""
        if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS:
            raise bad_cursor()
        payload, dot, signature = cursor.partition(".")
        if (
            not dot
            or not payload
            or not hmac.compare_digest(signature.encode(), self._sign(payload).encode())
        ):
            raise bad_cursor()
        try:
            data = json.loads(_b64decode(payload))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise bad_cursor() from None
        if not isinstance(data, dict) or data.get("s") != scope:
            raise bad_cursor()
        position = data.get("p")
        if not isinstance(position, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in position.items()
        ):
            raise bad_cursor()
        return position


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    has_more: bool
    next_cursor: str | None


def key_attributes(index: str | None) -> tuple[str, ...]:
    """The attributes that make up an ExclusiveStartKey for the table or one of its GSIs."""
    if index is None:
        return (PARTITION_KEY, SORT_KEY)
    return (PARTITION_KEY, SORT_KEY, *GSI_KEYS[index])


def query_page(
    client: Any,
    table: str,
    codec: CursorCodec,
    *,
    scope: str,
    key_condition: str,
    values: dict[str, Any],
    limit: int,
    cursor: str | None,
    index: str | None = None,
    names: dict[str, str] | None = None,
    filter_expression: str | None = None,
    newest_first: bool = False,
    consistent: bool = False,
) -> Page:
    """One page of a Query (never a Scan), with `has_more` exact when no filter cuts it short.

    Reads up to limit+1 matching items so `has_more` is known without an extra empty page; the
    cursor is the key of the last item returned. `scope` binds the cursor to this very query:
    include the community id and the partition value in it.
    """
    key_names = key_attributes(index)
    start: dict[str, Any] | None = None
    if cursor is not None:
        position = codec.decode(scope, cursor)
        if set(position) != set(key_names):
            raise bad_cursor()
        start = {name: {"S": position[name]} for name in key_names}
    raw_items: list[dict[str, Any]] = []
    last_evaluated: dict[str, Any] | None = None
    for _ in range(MAX_READS_PER_PAGE):
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeValues": values,
            "Limit": limit + 1 - len(raw_items),
            "ScanIndexForward": not newest_first,
        }
        if index is not None:
            request["IndexName"] = index
        elif consistent:
            request["ConsistentRead"] = True
        if names:
            request["ExpressionAttributeNames"] = names
        if filter_expression:
            request["FilterExpression"] = filter_expression
        if start is not None:
            request["ExclusiveStartKey"] = start
        response = client.query(**request)
        raw_items.extend(response.get("Items", []))
        last_evaluated = response.get("LastEvaluatedKey")
        if len(raw_items) > limit or not last_evaluated:
            break
        start = last_evaluated
    if len(raw_items) > limit:
        returned = raw_items[:limit]
        next_position = {name: returned[-1][name]["S"] for name in key_names}
        return Page([from_item(i) for i in returned], True, codec.encode(scope, next_position))
    if last_evaluated:
        # The read budget ran out under a selective filter: a short page that goes on.
        next_position = {name: last_evaluated[name]["S"] for name in key_names}
        return Page([from_item(i) for i in raw_items], True, codec.encode(scope, next_position))
    return Page([from_item(i) for i in raw_items], False, None)
