"""boto3 clients for tests on in-process moto, all from one boto3 session per process.

`mock_aws()` sets `boto3.DEFAULT_SESSION` to None while it runs, so every `moto_client(...)`
inside it made a new session that read and parsed the service's model again (0.14 s for
DynamoDB, paid by every test that built a table). Clients made from this session are mocked
the same way: moto intercepts every botocore client once it is imported.
"""

from __future__ import annotations

import threading
from typing import Any

_session: Any = None
_lock = threading.Lock()


def moto_client(service: str, region_name: str = "us-east-1") -> Any:
    global _session
    with _lock:
        if _session is None:
            import boto3

            _session = boto3.session.Session()
        return _session.client(service, region_name=region_name)
