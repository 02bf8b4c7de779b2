"""The tests' request lock around in-process moto never stays held after a failed call."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from moto import mock_aws

from tests.support.atomic_requests import AtomicRequests
from tests.support.moto_clients import moto_client


def test_a_call_that_fails_after_it_was_sent_gives_the_lock_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # in-process moto, whatever ran before
    with mock_aws():
        client = moto_client("dynamodb", region_name="us-east-1")
        AtomicRequests(client)
        failures = iter([RuntimeError("moto failed mid-request")])

        def fail_once(**_: Any) -> None:
            error = next(failures, None)
            if error is not None:
                raise error

        client.meta.events.register("before-send", fail_once)  # after the lock is taken
        with contextlib.suppress(RuntimeError):
            client.list_tables()
        answered: list[Any] = []
        later = threading.Thread(target=lambda: answered.append(client.list_tables()))
        later.start()
        later.join(timeout=10)
        assert answered and answered[0]["TableNames"] == []
