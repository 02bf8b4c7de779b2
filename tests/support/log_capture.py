"""What the product writes to its logs, as CloudWatch would receive it.

`emitted_logs` (a fixture): every line the Powertools logger formats while the test runs (at
DEBUG, whatever POWERTOOLS_LOG_LEVEL says), parsed back from its JSON, plus the EMF metric
lines `flush_metrics` prints. Tests assert on these lines, never on the logger's calls.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.observability import logger, metrics


@dataclass
class EmittedLogs:
    capsys: pytest.CaptureFixture[str]
    stream: io.StringIO = field(default_factory=io.StringIO)
    printed: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Every log line and every metric line so far, raw."""
        return self.stream.getvalue() + "\n".join(self.metric_lines())

    def metric_lines(self) -> list[str]:
        """The EMF lines printed so far (Powertools prints them to stdout)."""
        self.printed.extend(self.capsys.readouterr().out.splitlines())
        return [line for line in self.printed if '"_aws"' in line]

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def named(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("message") == message]


@pytest.fixture
def emitted_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[EmittedLogs]:
    captured = EmittedLogs(capsys)
    metrics.clear_metrics()  # what an earlier test buffered and never flushed
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
