"""Stripe's per-account limits and the scheduled work's share of them (DESIGN.md, rate control).

Pure arithmetic, no I/O: the DynamoDB token bucket (adapters/dynamodb/rate_buckets.py) and the
sizing of the worker (jobs/schedules.py) both read it.

- Stripe limits each account: `account_per_second` operations (100 live) and, per endpoint,
  `endpoint_per_second` (25 live "unless noted"). A renewal is one `POST /v1/payment_intents`,
  so the endpoint limit is the one scheduled charges meet first.
- The admin API is never starved: `reserve_share` of that limit is never granted to scheduled
  work. Scheduled work takes the rest (`max_tokens` per window) and less while Stripe says 429
  (AIMD: `decrease_factor` on a 429 or `lock_timeout`, `increase_share` of the budget back per
  window).
- Tokens are counted per `window_seconds` window and spaced evenly inside it (`slot_offset`),
  so calls reach Stripe paced, not in a burst at each window's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PLATFORM_ACCOUNT = "platform"  # the bucket of communities that charge on the platform itself


@dataclass(frozen=True)
class StripeLimits:
    account_per_second: float = 100.0
    endpoint_per_second: float = 25.0
    reserve_share: float = 0.05
    window_seconds: float = 2.0
    decrease_factor: float = 0.5
    # Additive increase per window after a cut, as a share of the budget's tokens.
    increase_share: float = 0.1
    min_tokens: int = 1
    # How long a worker thread may wait for its token's slot before it defers the message.
    max_wait_seconds: float = 2.0
    # Tokens one counter update reserves for a worker process (fewer DynamoDB requests).
    grant_size: int = 4
    # A token whose slot passed longer ago than this is dropped, not used late: capacity left
    # unused is gone (as in Stripe's bucket), so calls never bunch into a burst. Paced at the
    # share against a limit whose bucket holds about a second, calls stay within the limit
    # while share x (late + network jitter) <= the burst less one call: at the bench's 3/s,
    # 0.2 s leaves half a second for jitter (0.5 s drew 429s there).
    late_seconds: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.reserve_share < 1:
            raise ValueError("reserve_share must be in [0, 1)")
        if not 0 < self.decrease_factor < 1:
            raise ValueError("decrease_factor must be in (0, 1)")
        if self.max_tokens < self.min_tokens:
            raise ValueError("the limits leave scheduled work no token per window")

    @property
    def charge_limit_per_second(self) -> float:
        """What Stripe allows for charges on one account: the tighter of its two limits."""
        return min(self.account_per_second, self.endpoint_per_second)

    @property
    def max_tokens(self) -> int:
        """Scheduled charges per window at most: the limit minus the admin reserve."""
        return math.floor(
            self.charge_limit_per_second * (1 - self.reserve_share) * self.window_seconds + 1e-9
        )

    @property
    def scheduled_per_second(self) -> float:
        """The scheduled work's steady rate per account when Stripe never says 429."""
        return self.max_tokens / self.window_seconds

    def window_of(self, epoch_seconds: float) -> int:
        return math.floor(epoch_seconds / self.window_seconds)

    def window_start(self, window: int) -> float:
        return window * self.window_seconds

    def tokens_passed(self, window: int, now: float, cap: int) -> int:
        """Tokens of `window` whose slot is already behind `now` (a window's first grant
        starts after them, so a worker arriving mid-window does not burst, and its first token
        is not already late: the caller still has its DynamoDB writes to make before it calls)."""
        elapsed = now - self.window_start(window)
        if elapsed <= 0:
            return 0
        return min(cap, math.ceil(elapsed * cap / self.window_seconds - 1e-9))

    def slot_offset(self, token_index: int, cap: int) -> float:
        """Seconds after its window's start at which the token numbered `token_index` (1..cap)
        may call Stripe: the window's tokens spread evenly over it."""
        return (token_index - 1) * self.window_seconds / max(cap, 1)

    def decreased(self, cap: int) -> int:
        """Multiplicative decrease after a 429."""
        return max(self.min_tokens, math.floor(cap * self.decrease_factor))

    @property
    def increase_per_window(self) -> int:
        return max(1, math.ceil(self.max_tokens * self.increase_share))

    def increased(self, cap: int, windows: int) -> int:
        """Additive increase over `windows` windows, up to the reserve."""
        return min(self.max_tokens, cap + self.increase_per_window * max(windows, 0))


LIVE_LIMITS = StripeLimits()


class Deferred(Exception):
    """Run this message again later. `written`: a charge is in flight (pending payment and
    claim, a 429 answered it) and must be sent again soon, within RESUME_WINDOW; otherwise
    nothing was written (the account's budget had no slot). `retry_after`: seconds until the
    account's budget expects a free slot for it (None: unknown, the worker backs off)."""

    def __init__(
        self, reason: str, account: str, *, written: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{reason} (Stripe account {account})")
        self.reason = reason
        self.account = account
        self.written = written
        self.retry_after = retry_after
