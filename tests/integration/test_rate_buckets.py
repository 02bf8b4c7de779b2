"""The Stripe token bucket on DynamoDB (moto): shared by every worker, paced, AIMD after a 429.

Two `DynamoStripeBudget`s on one table play two worker processes; the clock is a number the
test moves (and `sleep` moves it too), so nothing depends on the real time."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from chalicelib.adapters.dynamodb.rate_buckets import DynamoStripeBudget, window_key
from chalicelib.domain.rate_control import StripeLimits
from tests.integration.conftest import TABLE_NAME
from tests.support.moto_clients import moto_client

# 10 charges/s, 5% reserve, 2 s windows -> 19 tokens per window; 4 per grant.
LIMITS = StripeLimits(
    account_per_second=100, endpoint_per_second=10, reserve_share=0.05, max_wait_seconds=0.5
)
T0 = 1_800_000_000.0  # a window boundary (divisible by 2)


class FakeTime:
    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def dynamodb(aws: dict[str, str]) -> object:
    return moto_client("dynamodb", region_name="us-east-1")


def budget(dynamodb: object, time: FakeTime, limits: StripeLimits = LIMITS) -> DynamoStripeBudget:
    return DynamoStripeBudget(dynamodb, TABLE_NAME, limits, clock=time.clock, sleep=time.sleep)


def take(worker: DynamoStripeBudget, account: str) -> bool:
    """Take a token and wait for its slot, as a charge does right before its Stripe call."""
    wait = worker.acquire(account)
    if wait is None:
        return False
    wait()
    return True


def window_item(dynamodb: object, account: str, window: int) -> dict[str, int]:
    item = dynamodb.get_item(TableName=TABLE_NAME, Key=window_key(account, window))["Item"]  # type: ignore[attr-defined]
    return {name: int(item[name]["N"]) for name in ("granted", "cap")}


def test_the_limits_leave_the_admin_reserve_and_meet_the_endpoint_limit_first() -> None:
    assert LIMITS.max_tokens == 19
    live = StripeLimits()
    assert live.charge_limit_per_second == 25  # the endpoint's 25/s, not the account's 100/s
    assert live.scheduled_per_second == 23.5
    assert live.scheduled_per_second <= live.charge_limit_per_second * (1 - live.reserve_share)


def test_workers_share_one_window_and_never_get_more_than_its_cap(dynamodb: object) -> None:
    time = FakeTime()
    first, second = budget(dynamodb, time), budget(dynamodb, time)
    slots: list[float] = []
    granted = 0
    # Both ask in turn, never sleeping: record each token's slot instead of waiting for it.
    for worker in [first, second] * 20:
        before = len(time.slept)
        if take(worker, "acct_a"):
            granted += 1
            slots.append(time.now + (time.slept[-1] if len(time.slept) > before else 0.0))
        time.now = T0  # stay inside the first window
        del time.slept[:]
    assert granted <= LIMITS.max_tokens
    assert window_item(dynamodb, "acct_a", LIMITS.window_of(T0))["cap"] == 19
    # Slots are spread over the window, 2 s / 19 apart, none twice.
    assert len(set(round(s, 6) for s in slots)) == len(slots)
    assert max(slots) < T0 + LIMITS.window_seconds


def test_one_worker_asking_without_pause_is_paced_at_the_share(dynamodb: object) -> None:
    time = FakeTime()
    worker = budget(dynamodb, time)
    for _ in range(3 * LIMITS.max_tokens):
        assert take(worker, "acct_a")
    # 57 tokens = three windows' worth: the last one's slot is near the end of the third.
    elapsed = time.now - T0
    assert 3 * LIMITS.window_seconds * 0.9 < elapsed < 3 * LIMITS.window_seconds
    assert max(time.slept) <= LIMITS.window_seconds / LIMITS.max_tokens + 1e-6
    # Per window five grants of 4 (the fifth gives 3), and one refused ask that learns it is
    # full (not in the last).
    assert worker.requests == 6 + 6 + 5


def test_a_full_window_refuses_without_waiting_past_max_wait(dynamodb: object) -> None:
    window = LIMITS.window_of(T0)
    dynamodb.put_item(  # type: ignore[attr-defined]  # other workers took the whole window
        TableName=TABLE_NAME,
        Item={**window_key("acct_a", window), "granted": {"N": "19"}, "cap": {"N": "19"}},
    )
    time = FakeTime()
    worker = budget(dynamodb, time)
    assert take(worker, "acct_a") is False
    requests = worker.requests
    assert take(worker, "acct_a") is False
    assert worker.requests == requests  # a window known full costs no request
    assert time.slept == []
    time.now = T0 + LIMITS.window_seconds
    assert take(worker, "acct_a") is True


def test_tokens_past_the_wait_stay_with_the_process_for_its_next_call(dynamodb: object) -> None:
    time = FakeTime()
    time.sleep = time.slept.append  # type: ignore[method-assign]  # time stands still
    worker = budget(dynamodb, time)
    taken = 0
    while take(worker, "acct_a"):
        taken += 1
    # Slots 2 s / 19 apart: five fit in the 0.5 s wait; the grant's rest is kept, not lost.
    assert taken == 5
    requests = worker.requests
    time.now += 0.2
    assert take(worker, "acct_a") is True
    assert worker.requests == requests


def test_accounts_do_not_share_a_bucket(dynamodb: object) -> None:
    time = FakeTime()
    time.sleep = time.slept.append  # type: ignore[method-assign]  # time stands still
    worker = budget(dynamodb, time)
    while take(worker, "acct_big"):
        pass
    assert take(worker, "acct_small") is True


def test_a_429_halves_the_share_for_every_worker_then_it_grows_back(dynamodb: object) -> None:
    time = FakeTime()
    one_at_a_time = replace(LIMITS, grant_size=1)  # every acquire asks the table
    first, second = budget(dynamodb, time, one_at_a_time), budget(dynamodb, time, one_at_a_time)
    assert take(first, "acct_a")
    window = LIMITS.window_of(T0)

    first.rate_limited("acct_a")
    first.rate_limited("acct_a")  # the same window: one cut per process, not compounding

    assert window_item(dynamodb, "acct_a", window)["cap"] == 9
    # The other worker's next window starts from the cut.
    time.now = LIMITS.window_start(window + 1)
    assert take(second, "acct_a")
    assert window_item(dynamodb, "acct_a", window + 1)["cap"] == 9
    # Additive increase: a tenth of the budget more per window, up to the reserve.
    caps = []
    for later in range(2, 16):
        time.now = LIMITS.window_start(window + later)
        assert take(second, "acct_a")
        caps.append(window_item(dynamodb, "acct_a", window + later)["cap"])
    assert caps == sorted(caps) and caps[0] < LIMITS.max_tokens and caps[-1] == LIMITS.max_tokens
    assert all(b - a <= LIMITS.increase_per_window for a, b in itertools.pairwise(caps))


def test_a_worker_arriving_mid_window_does_not_spend_the_passed_slots_in_a_burst(
    dynamodb: object,
) -> None:
    time = FakeTime()
    time.now = T0 + 1.5  # three quarters into the window: 14 of its 19 slots are behind us
    time.sleep = time.slept.append  # type: ignore[method-assign]  # time stands still
    worker = budget(dynamodb, time)
    immediate = 0
    while take(worker, "acct_a"):
        immediate += 0 if time.slept else 1
        time.slept.clear()
    # Only the slots within `late_seconds` of now may go at once (Stripe's burst), not 14.
    assert immediate <= LIMITS.late_seconds * LIMITS.max_tokens / LIMITS.window_seconds + 1
    granted = window_item(dynamodb, "acct_a", LIMITS.window_of(T0))["granted"]
    assert granted >= LIMITS.tokens_passed(LIMITS.window_of(T0), T0 + 1.5, 19) + 1


def test_a_caller_back_after_its_slot_passed_takes_the_next_token_instead_of_bunching(
    dynamodb: object,
) -> None:
    time = FakeTime()
    worker = budget(dynamodb, time)
    first = worker.acquire("acct_a")
    second = worker.acquire("acct_a")
    assert first is not None and second is not None
    # A caller back within `late_seconds` of its slot (the second: T0 + 2 s / 19) just goes.
    time.now = T0 + LIMITS.window_seconds / LIMITS.max_tokens + LIMITS.late_seconds / 2
    second()
    assert worker.late_tokens == 0 and time.slept == []
    granted = window_item(dynamodb, "acct_a", LIMITS.window_of(T0))["granted"]
    # The first caller's writes took a second: its slot (T0) is long gone.
    time.now = T0 + 1.0
    first()
    # It gave its token up and took another (the held ones had passed too: a new grant, its
    # slots after the ones behind us) instead of calling with the passed one.
    assert worker.late_tokens == 1
    assert window_item(dynamodb, "acct_a", LIMITS.window_of(T0))["granted"] > granted


def test_a_deferred_call_is_told_the_accounts_next_free_slot_each_one_a_slot_later(
    dynamodb: object,
) -> None:
    window = LIMITS.window_of(T0)
    dynamodb.put_item(  # type: ignore[attr-defined]  # other workers took the whole window
        TableName=TABLE_NAME,
        Item={**window_key("acct_a", window), "granted": {"N": "19"}, "cap": {"N": "19"}},
    )
    time = FakeTime()
    time.now = T0 + 0.5
    worker = budget(dynamodb, time)
    assert worker.acquire("acct_a") is None
    first, second, third = (worker.retry_after("acct_a") for _ in range(3))
    # The window is full: the first free slot is the next window's start, not a back-off.
    assert first == pytest.approx(LIMITS.window_seconds - 0.5)
    spacing = LIMITS.window_seconds / LIMITS.max_tokens
    assert second - first == pytest.approx(spacing)
    assert third - second == pytest.approx(spacing)
    # Another account is not behind this one.
    assert worker.retry_after("acct_b") == 0.0


def test_a_windows_first_grant_hands_out_no_slot_already_behind_now(dynamodb: object) -> None:
    time = FakeTime()
    time.now = T0 + 1.5  # mid-window: the caller still has its writes to make before it calls
    time.sleep = time.slept.append  # type: ignore[method-assign]  # time stands still
    worker = budget(dynamodb, time)
    take(worker, "acct_a")
    # Its token's slot is ahead of it (it waited), never one that passed while nobody called.
    assert len(time.slept) == 1 and 0 < time.slept[0] <= LIMITS.window_seconds / 19


def test_a_caller_that_wakes_long_after_its_slot_takes_the_next_token_instead(
    dynamodb: object,
) -> None:
    time = FakeTime()

    def stalled(seconds: float) -> None:  # the process stalls a second while the caller sleeps
        time.slept.append(seconds)
        time.now += seconds + 1.0

    time.sleep = stalled  # type: ignore[method-assign]
    worker = budget(dynamodb, time)
    assert take(worker, "acct_a")  # the first slot (T0): no wait
    wait = worker.acquire("acct_a")
    assert wait is not None
    wait()
    # It woke a second after its slot: it gave that token up and took a later one (one
    # exchange only: after it, it goes even if this clock stalls again).
    assert worker.late_tokens == 1
    assert len(time.slept) <= 2
