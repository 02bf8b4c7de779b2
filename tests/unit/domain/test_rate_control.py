"""The rate-control arithmetic (chalicelib/domain/rate_control.py): pure, time as a number."""

from __future__ import annotations

import pytest

from chalicelib.domain.rate_control import Deferred, StripeLimits

# 10 charges/s, 5% reserve, 2 s windows -> 19 tokens a window, one every 2/19 s.
LIMITS = StripeLimits(account_per_second=100, endpoint_per_second=10)
START = 1_800_000_000.0  # a window's start (divisible by 2)


@pytest.mark.parametrize(
    ("seconds_in", "passed"),
    [(-0.1, 0), (0.0, 0), (0.01, 1), (2 / 19 - 0.001, 1), (2 / 19 + 0.01, 2), (1.5, 15), (2.5, 19)],
)
def test_tokens_passed_counts_every_slot_behind_now_so_a_grant_starts_at_or_after_it(
    seconds_in: float, passed: int
) -> None:
    window = LIMITS.window_of(START)
    assert LIMITS.tokens_passed(window, START + seconds_in, 19) == passed
    if passed < 19:
        # The first token a grant hands out (number passed + 1) is not behind now.
        assert START + LIMITS.slot_offset(passed + 1, 19) >= START + seconds_in - 1e-9


def test_a_deferral_carries_when_its_accounts_next_slot_is() -> None:
    deferred = Deferred("no Stripe budget left this moment", "acct_a", written=False)
    assert deferred.retry_after is None  # unknown: the worker backs off
    timed = Deferred("Stripe answered 429", "acct_a", written=True, retry_after=3.5)
    assert timed.retry_after == 3.5 and timed.written and timed.account == "acct_a"
