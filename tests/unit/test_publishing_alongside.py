"""The publisher that runs alongside a test-clock advance's steps (jobs/test_clock.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from chalicelib.config import Settings
from chalicelib.jobs.test_clock import PublishingAlongside, publishing_alongside


def test_passes_run_back_to_back_while_they_publish_and_stop_when_told() -> None:
    outbox = list(range(250))
    passes: list[int] = []
    emptied = threading.Event()

    def publish_pass() -> int:
        taken = outbox[:100]
        del outbox[:100]
        passes.append(len(taken))
        if not outbox:
            emptied.set()
        return len(taken)

    started = time.monotonic()
    with PublishingAlongside(publish_pass, idle_seconds=60):
        assert emptied.wait(5)
    # Three passes at once (100, 100, 50), then one that found nothing and waited: the stop
    # ended that wait, long before its 60 s.
    assert passes[:3] == [100, 100, 50]
    assert set(passes[3:]) <= {0}
    assert time.monotonic() - started < 5


def test_a_pass_that_raises_is_logged_and_the_next_one_runs(caplog: Any) -> None:
    calls: list[int] = []
    second = threading.Event()

    def publish_pass() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("moto went away")
        second.set()
        return 0

    with PublishingAlongside(publish_pass, idle_seconds=0.01):
        assert second.wait(5)
    assert len(calls) >= 2
    assert "test_clock_publish_alongside_failed" in caplog.text


def test_nothing_runs_alongside_where_the_steps_run_on_one_thread() -> None:
    """In-process moto (the tests) takes one request at a time: no second thread there."""
    box: Any = SimpleNamespace(settings=replace(Settings.from_env({}), test_clock_concurrency=1))
    with publishing_alongside(box) as alongside:
        assert not isinstance(alongside, PublishingAlongside)
    made: list[str] = []

    class Publisher:
        def publish_pending(self, limit: int) -> int:
            made.append(threading.current_thread().name)
            return 0

    box = SimpleNamespace(
        settings=replace(Settings.from_env({}), test_clock_concurrency=4),
        event_publisher=Publisher(),
    )
    with publishing_alongside(box) as alongside:
        assert isinstance(alongside, PublishingAlongside)
        deadline = time.monotonic() + 5
        while not made and time.monotonic() < deadline:
            time.sleep(0.01)
    assert made and set(made) == {"test-clock-publisher"}
