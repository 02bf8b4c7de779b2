"""JSON stored in one string attribute, zlib-compressed (base64, prefixed) when large.

A subscription of 1,000 members (twice while a charge is in flight) is ~400 KB of JSON, and a
payment adding 1,000 members carries ~2,000 lines: DynamoDB's item limit is 400 KB. Above
`COMPRESS_ABOVE` the text is stored as `z1:` + base64(zlib(json)); reads take both forms, so
items written before stay readable.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

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
