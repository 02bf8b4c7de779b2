"""Where the tests' clocks start: BILLING_TEST_CLOCK_START if set, else a fixed instant.

No test reads the real date. `make test-calendar` runs the clock-dependent tests with the
clock started on each of CALENDAR_STARTS (a 31-day month's last day, a leap day, a year's
last day) to show that no expectation assumes a month of 30 days.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

DEFAULT_TEST_CLOCK_START = "2026-01-15T12:00:00Z"
CALENDAR_STARTS = ("2026-01-31T12:00:00Z", "2028-02-29T12:00:00Z", "2026-12-31T12:00:00Z")


def clock_start_text() -> str:
    return os.environ.get("BILLING_TEST_CLOCK_START") or DEFAULT_TEST_CLOCK_START


def clock_start() -> datetime:
    return parse_instant(clock_start_text())


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
