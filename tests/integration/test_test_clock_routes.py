"""The test clock routes: GET /v1/test-clock, POST /v1/test-clock/advance (API.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.clock import StoredTestClock
from chalicelib.jobs import test_clock
from chalicelib.jobs.local_runner import run_once
from chalicelib.jobs.registry import override_jobs
from tests.integration.conftest import START, Env
from tests.integration.scheduling_fakes import GRACE, PERIOD, RETRY_AFTER, FakeBilling

PLUS_ONE_HOUR = timezone(timedelta(hours=1))


def stamp(moment: datetime) -> str:
    """The API's RFC 3339 form (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Clocked:
    env: Env
    box: bootstrap.Container
    billing: FakeBilling

    def advance(self, body: dict[str, Any]) -> Any:
        return self.env.client.http.post(
            "/v1/test-clock/advance", headers=self.env.platform_headers(), body=json.dumps(body)
        )


@pytest.fixture
def clocked(env: Env) -> Iterator[Clocked]:
    box = bootstrap.Container(replace(env.settings, test_clock_enabled=True), clock=env.clock)
    billing = FakeBilling(box)
    override_jobs(billing.jobs())
    bootstrap.override_container(box)
    yield Clocked(env, box, billing)
    override_jobs(None)


def test_routes_are_404_where_the_test_clock_is_off(env: Env) -> None:
    assert not env.settings.test_clock_enabled
    got = env.client.http.get("/v1/test-clock", headers=env.platform_headers())
    assert got.status_code == 404
    assert got.json_body["error"]["type"] == "not_found"
    posted = env.client.http.post(
        "/v1/test-clock/advance", headers=env.platform_headers(), body=json.dumps({"days": 1})
    )
    assert posted.status_code == 404
    assert env.clock.now() == START


def test_get_returns_now_and_needs_the_platform_key(clocked: Clocked) -> None:
    got = clocked.env.client.http.get("/v1/test-clock", headers=clocked.env.platform_headers())
    assert got.status_code == 200
    assert got.json_body == {"now": stamp(START)}
    anonymous = clocked.env.client.http.get(
        "/v1/test-clock", headers={"Authorization": "Bearer nope"}
    )
    assert anonymous.status_code == 401


BAD_ADVANCES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"days", "seconds", "to"}),
    ({"days": 1, "seconds": 5}, {"days", "seconds"}),
    ({"days": 1, "to": "2027-01-01T00:00:00Z"}, {"days", "to"}),
    ({"days": -1}, {"days"}),
    ({"seconds": -5}, {"seconds"}),
    ({"days": "3"}, {"days"}),
    ({"days": 1.5}, {"days"}),
    ({"days": True}, {"days"}),
    ({"days": 100000}, {"days"}),
    ({"to": stamp(START - timedelta(days=5))}, {"to"}),  # before now: never back
    ({"to": "2027-01-01T00:00:00"}, {"to"}),  # no timezone
    ({"to": "next tuesday"}, {"to"}),
    ({"hours": 1}, {"hours"}),
]


def test_bad_advance_is_400_naming_the_field_and_moves_nothing(clocked: Clocked) -> None:
    clocked.billing.add("sub_untouched", "renewal", START + timedelta(hours=1))
    for body, fields in BAD_ADVANCES:
        got = clocked.advance(body)
        assert got.status_code == 400, (body, got.json_body)
        assert got.json_body["error"]["type"] == "invalid_request"
        assert {d["field"] for d in got.json_body["error"]["details"]} == fields, body
        assert clocked.env.clock.now() == START
    assert clocked.billing.history == []


def test_advance_runs_every_action_due_on_the_way_in_time_order(clocked: Clocked) -> None:
    billing = clocked.billing
    billing.add("sub_monthly", "renewal", START + timedelta(days=10))
    billing.add("sub_declining", "renewal", START + timedelta(days=1))
    billing.declining.add("sub_declining")
    billing.add("sub_leaving", "expiration", START + timedelta(days=2), status="expiring")
    billing.add("sub_far", "renewal", START + timedelta(days=90))

    got = clocked.advance({"days": 65})

    assert got.status_code == 200, got.json_body
    assert got.json_body == {
        "now": stamp(START + timedelta(days=65)),
        # sub_monthly at day 10 and again at day 40: the renewal scheduled inside the window
        # was processed too. sub_declining: failed at day 1, retried days 4 and 7, cancelled
        # at the end of its 7-day grace (day 8).
        "processed": {
            "renewed": 2,
            "retried": 2,
            "cancelled": 1,
            "expired": 1,
            "renewals_failed": 1,
        },
    }
    assert clocked.env.clock.now() == START + timedelta(days=65)
    assert billing.charges == [("sub_monthly", 2), ("sub_monthly", 3)]
    day = timedelta(days=1)
    acted = [(sub, outcome, now) for sub, outcome, now in billing.history]
    assert acted == [
        ("sub_declining", "renewal_failed", START + day),
        ("sub_leaving", "expired", START + 2 * day),
        ("sub_declining", "retry_failed", START + day + RETRY_AFTER),
        ("sub_declining", "retry_failed", START + day + 2 * RETRY_AFTER),
        ("sub_declining", "grace_cancelled", START + day + GRACE),
        ("sub_monthly", "renewed", START + 10 * day),
        ("sub_monthly", "renewed", START + 10 * day + PERIOD),
    ]
    assert billing.load("sub_far")["period"]["N"] == "1"


def test_advance_to_a_time_and_by_seconds(clocked: Clocked) -> None:
    clocked.billing.add("sub_soon", "renewal", START + timedelta(seconds=30))
    by_seconds = clocked.advance({"seconds": 29})
    assert by_seconds.json_body["processed"]["renewed"] == 0
    assert by_seconds.json_body["now"] == stamp(START + timedelta(seconds=29))
    # `to` in another offset: START in UTC+1 is no move (400); an hour after it is.
    to_time = clocked.advance({"to": START.astimezone(PLUS_ONE_HOUR).isoformat()})
    assert to_time.status_code == 400
    one_hour_on = START + timedelta(hours=1)
    to_time = clocked.advance({"to": one_hour_on.astimezone(PLUS_ONE_HOUR).isoformat()})
    assert to_time.status_code == 200
    assert to_time.json_body == {
        "now": stamp(one_hour_on),
        "processed": {
            "renewed": 1,
            "retried": 0,
            "cancelled": 0,
            "expired": 0,
            "renewals_failed": 0,
        },
    }


def test_scheduler_ticks_and_other_advances_wait_while_an_advance_runs(clocked: Clocked) -> None:
    clocked.billing.add("sub_wait", "renewal", START - timedelta(seconds=1))
    assert clocked.box.advance_lease.take(test_clock.LEASE_SECONDS)
    assert clocked.box.advance_lease.held()
    assert run_once(clocked.box) == {}
    assert clocked.advance({"days": 1}).status_code == 409
    assert clocked.billing.history == []
    clocked.box.advance_lease.release()

    assert clocked.advance({"days": 1}).json_body["processed"]["renewed"] == 1
    assert not clocked.box.advance_lease.held()


class TickingWall:
    """Wall time that moves `tick` forward every time it is read: processing latency, exactly."""

    def __init__(self, start: datetime, tick: timedelta) -> None:
        self._now = start
        self._tick = tick

    def __call__(self) -> datetime:
        self._now += self._tick
        return self._now


def test_an_action_due_within_the_processing_latency_does_not_break_the_advance(
    env: Env,
) -> None:
    # The stored test clock is wall time plus an offset, so it moves between two readings.
    # An advance that reads "the step is still ahead", then moves the clock to the step and
    # reads the wall again, finds the step behind it when a due time lies within that latency
    # (here: within one tick). Pairs due 0.5 .. 5.5 ticks apart, an hour between pairs, make
    # sure some step lands in that window whatever the number of readings between the two.
    tick = timedelta(seconds=1)
    settings = replace(env.settings, test_clock_enabled=True)
    clock = StoredTestClock(env.container.dynamodb, settings.table_name, TickingWall(START, tick))
    box = bootstrap.Container(settings, clock=clock)
    billing = FakeBilling(box)
    override_jobs(billing.jobs())
    bootstrap.override_container(box)
    due: dict[str, datetime] = {}
    for pair in range(6):
        first = START + timedelta(hours=pair + 1)
        due[f"sub_first{pair}"] = first
        due[f"sub_close{pair}"] = first + (pair + 0.5) * tick
    for sub_id, when in due.items():
        billing.add(sub_id, "renewal", when)

    got = env.client.http.post(
        "/v1/test-clock/advance", headers=env.platform_headers(), body=json.dumps({"days": 1})
    )

    assert got.status_code == 200, got.json_body
    assert got.json_body["processed"]["renewed"] == len(due)
    assert sorted(billing.charges) == sorted((sub_id, 2) for sub_id in due)
    assert all(now >= due[sub_id] for sub_id, _, now in billing.history)
    assert clock.now() >= START + timedelta(days=1)
