"""Stripe rate buckets: one counter item per Stripe account and window, shared by all workers.

Item layout:
- window  pk=`RATE#<stripe account>`  sk=`W#<window number>` (window = epoch s // window_seconds)
          attrs: granted (tokens handed out in the window), cap (the window's share for
          scheduled work), expires_at (TTL, an hour after the window).

A grant is ONE UpdateItem: `granted += :k` for `grant_size` tokens at once (one thread of a
process asks, its other threads take from the answer), conditional on
`granted < cap`; the window's first grant also sets `cap` (`if_not_exists`) from the granter's
view of the account's share (AIMD: the last cap it saw plus the additive increase, at most the
limit minus the admin reserve). The answer names the tokens: numbers `granted-k+1 .. min(granted,
cap)`, each with a slot spaced evenly over the window (`StripeLimits.slot_offset`), so the calls
of every worker together reach Stripe paced. Tokens past `cap` (a race at the window's end) are
dropped, and so are tokens whose slot passed more than `late_seconds` ago (unused capacity is
gone, never spent in a burst); a window's first grant starts counting after the slots already
behind it. A process keeps the tokens it was granted and hands them to its threads in slot order.

After a 429 (`rate_limited`) the worker writes a cut cap (x decrease_factor) into the current and
the next windows (conditional `cap > cut`, so concurrent cuts do not compound); the windows
after those start from the cut and grow back by `increase_per_window`.

`acquire` hands out a token whose slot is at most `max_wait_seconds` away, as a function that
waits for the slot: the caller writes its pending payment first and calls it right before the
Stripe request. A caller that comes back to it more than `late_seconds` after the slot takes
the next token instead (a late call would bunch with the next slots' calls: Stripe's 429). No
slot that soon -> None, and the caller defers the work: `retry_after` says when the account's
next free slot is (each deferral one slot later), and the worker puts the message back on the
queue with that delay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.rate_control import LIVE_LIMITS, StripeLimits

TTL_SECONDS = 3600
# Windows after a 429 that get the cut cap (then +increase_per_window each).
CUT_WINDOWS = 3
# A caller woken this long after its slot was held up by a stall of the process (a garbage
# collection, a starved CPU): its call would bunch with the calls of the slots that passed.
STALL_SECONDS = 0.5


@dataclass
class _Account:
    slots: list[float] = field(default_factory=list)  # held tokens' slot times, ascending
    cap: int | None = None  # the last window cap seen
    cap_window: int = 0  # the window it was seen in
    full_before: float = 0.0  # every window starting before this is known to be full
    cut_window: int = -1  # the window of this process's last cut
    asking: bool = False  # a thread of this process is asking the table for tokens
    waiting: int = 0  # threads waiting for that answer
    deferred_until: float = 0.0  # the slot the last deferral of this process was sent back to


def window_key(account: str, window: int) -> dict[str, Any]:
    return {"pk": {"S": f"RATE#{account}"}, "sk": {"S": f"W#{window}"}}


class DynamoStripeBudget:
    """The `StripeCallBudget` port on DynamoDB (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        limits: StripeLimits = LIVE_LIMITS,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._accounts: dict[str, _Account] = {}
        self.requests = 0  # DynamoDB requests made (bench and tests read it)
        self.late_tokens = 0  # tokens given up because their caller came back too late
        self.unused_tokens = 0  # tokens whose slot passed before any thread took them

    def _account(self, account: str) -> _Account:
        state = self._accounts.get(account)
        if state is None:
            state = self._accounts[account] = _Account()
        return state

    # --- the port ----------------------------------------------------------------------------
    def acquire(self, account: str) -> Callable[[], None] | None:
        slot = self._take_slot(account)
        return None if slot is None else partial(self._wait_for_slot, account, slot)

    def _take_slot(self, account: str) -> float | None:
        """The slot of a token for `account` at most `max_wait_seconds` away, or None."""
        limits = self.limits
        deadline = self._clock() + limits.max_wait_seconds
        while True:
            now = self._clock()
            with self._lock:
                state = self._account(account)
                # A token whose slot passed is dropped: using it late would bunch calls.
                while state.slots and state.slots[0] < now - limits.late_seconds:
                    state.slots.pop(0)
                    self.unused_tokens += 1
                slot = state.slots.pop(0) if state.slots else None
                if slot is not None and slot > deadline:
                    state.slots.insert(0, slot)
                    return None
                if slot is None and state.asking:
                    # One thread per process asks the table; the others take from its answer.
                    state.waiting += 1
                    self._answered.wait(timeout=limits.max_wait_seconds)
                    state.waiting -= 1
                    continue
                if slot is None:
                    state.asking = True
                    wanted = limits.grant_size
                first_window = limits.window_of(max(now, state.full_before))
            if slot is not None:
                return slot
            try:
                granted = self._grant(account, first_window, deadline, wanted)
            finally:
                with self._lock:
                    state.asking = False
                    self._answered.notify_all()
            if not granted:
                return None

    def _wait_for_slot(self, account: str, slot: float) -> None:
        """Sleep until the token's slot. A caller more than `late_seconds` past the slot when
        it comes back to it (its DynamoDB writes took that long), or more than STALL_SECONDS
        past it when it wakes (the process stalled while it slept), would bunch its call with
        the next slots' calls (Stripe's 429): it takes the account's next token instead and
        waits for that one, once; only when none is free within `max_wait_seconds` does it
        go late."""
        exchanged = False
        while True:
            wait = slot - self._clock()
            tolerated = self.limits.late_seconds
            if wait > 0:
                self._sleep(wait)
                wait = slot - self._clock()
                tolerated = STALL_SECONDS  # a thread's wake-up is late by a little anyway
            if exchanged or -wait <= tolerated:
                return
            self.late_tokens += 1
            exchanged = True
            later = self._take_slot(account)
            if later is None:
                return
            slot = later

    def rate_limited(self, account: str) -> None:
        limits = self.limits
        window = limits.window_of(self._clock())
        with self._lock:
            state = self._account(account)
            if state.cut_window == window:
                return  # this process already cut this window's share
            cut = limits.decreased(state.cap if state.cap is not None else limits.max_tokens)
            state.cut_window = window
            state.cap, state.cap_window = cut, window
            state.slots.clear()
        for offset in range(CUT_WINDOWS):
            value = limits.increased(cut, max(offset - 1, 0))
            self._set_cap_at_most(account, window + offset, value)

    def retry_after(self, account: str) -> float:
        """The account's next free slot as this process knows it (after the slots it holds
        and the windows it knows are full), each call one slot at the account's current share
        later than the one before (see the port)."""
        limits = self.limits
        now = self._clock()
        with self._lock:
            state = self._account(account)
            cap = limits.max_tokens if state.cap is None else state.cap
            after_held = state.slots[-1] + limits.window_seconds / cap if state.slots else now
            slot = max(now, state.full_before, after_held, state.deferred_until)
            state.deferred_until = slot + limits.window_seconds / cap
        return slot - now

    def spacing_seconds(self) -> float:
        return 1 / self.limits.scheduled_per_second

    # --- DynamoDB ------------------------------------------------------------------------------
    def _grant(self, account: str, window: int, deadline: float, wanted: int) -> bool:
        """Ask for tokens in `window`, then the next ones that start before `deadline`; True if
        this process got some."""
        limits = self.limits
        while limits.window_start(window) <= deadline:
            with self._lock:
                state = self._account(account)
                proposal = (
                    limits.max_tokens
                    if state.cap is None
                    else limits.increased(state.cap, window - state.cap_window)
                )
            passed = limits.tokens_passed(window, self._clock(), proposal)
            answer = self._add(account, window, proposal, wanted, passed)
            if answer is not None:
                granted, cap = answer
                first = granted - wanted + 1
                last = min(granted, cap)
                start = limits.window_start(window)
                with self._lock:
                    state = self._account(account)
                    if window >= state.cap_window:
                        state.cap, state.cap_window = cap, window
                    if last >= first:
                        state.slots.extend(
                            start + limits.slot_offset(i, cap) for i in range(first, last + 1)
                        )
                        state.slots.sort()
                        return True
            with self._lock:
                state = self._account(account)
                state.full_before = max(state.full_before, limits.window_start(window + 1))
            window += 1
        return False

    def _add(
        self, account: str, window: int, proposal: int, wanted: int, passed: int
    ) -> tuple[int, int] | None:
        """`granted += wanted` in the window unless it is full (a new window's count starts at
        the `passed` tokens whose slots are behind us); (granted, cap) or None."""
        self.requests += 1
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=window_key(account, window),
                UpdateExpression=(
                    "SET cap = if_not_exists(cap, :proposal), "
                    "expires_at = if_not_exists(expires_at, :ttl), "
                    "granted = if_not_exists(granted, :passed) + :k"
                ),
                ConditionExpression="attribute_not_exists(granted) OR granted < cap",
                ExpressionAttributeValues={
                    ":proposal": {"N": str(proposal)},
                    ":ttl": {"N": str(self._expiry(window))},
                    ":k": {"N": str(wanted)},
                    ":passed": {"N": str(passed)},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        item = answer["Attributes"]
        return int(item["granted"]["N"]), int(item["cap"]["N"])

    def _set_cap_at_most(self, account: str, window: int, value: int) -> None:
        self.requests += 1
        try:
            self._client.update_item(
                TableName=self._table,
                Key=window_key(account, window),
                UpdateExpression="SET cap = :cap, expires_at = if_not_exists(expires_at, :ttl)",
                ConditionExpression="attribute_not_exists(cap) OR cap > :cap",
                ExpressionAttributeValues={
                    ":cap": {"N": str(value)},
                    ":ttl": {"N": str(self._expiry(window))},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def _expiry(self, window: int) -> int:
        return int(self.limits.window_start(window + 1)) + TTL_SECONDS
