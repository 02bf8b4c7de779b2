"""The scheduled-job registry is complete and consistent (checked at import, no AWS)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import get_args

import pytest
from chalice.app import ScheduledEventConfig

from chalicelib.adapters.dynamodb.due_index import DUE_GROUPS, DueGroup
from chalicelib.adapters.dynamodb.subscriptions import DUE_GROUP_OF_ACTION
from chalicelib.bootstrap import Container
from chalicelib.config import Settings
from chalicelib.jobs.local_runner import JOBS
from chalicelib.jobs.registry import (
    SCHEDULED_JOBS,
    SWEEP_GROUPS,
    Reported,
    ScheduledJob,
    sweep_groups,
)

NOT_A_DUE_SWEEP = {
    "webhook_reconciliation",  # Stripe's event list
    "event_deliveries",  # retries of events to the platform (jobs/event_publisher.py)
}
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
BOX = Container(Settings.from_env({"BILLING_STAGE": "test"}))


def test_every_due_group_the_adapters_write_has_exactly_one_job() -> None:
    # Every write site passes a `DueGroup` (mypy checks that); DUE_GROUPS must list them all.
    assert get_args(DueGroup) == DUE_GROUPS
    assert set(DUE_GROUP_OF_ACTION.values()) <= set(DUE_GROUPS)
    assert set(SCHEDULED_JOBS) == set(DUE_GROUPS)
    for group, job in SCHEDULED_JOBS.items():
        assert job.group == group


@pytest.mark.parametrize("group", DUE_GROUPS)
def test_every_action_takes_the_parameters_the_worker_passes(group: DueGroup) -> None:
    job = SCHEDULED_JOBS[group]
    worker_args = (BOX, "com_1", "sub_1", NOW)
    if job.snapshot_action is not None:
        signature = inspect.signature(job.snapshot_action)
        signature.bind(*worker_args, {"data": "{}", "version": 1})
        signature.bind(*worker_args, None)
    else:
        assert job.action is not None
        signature = inspect.signature(job.action)
        signature.bind(*worker_args)
        with pytest.raises(TypeError):  # takes_snapshot says the truth both ways
            signature.bind(*worker_args, {"data": "{}", "version": 1})
    assert job.takes_snapshot == ("snapshot" in signature.parameters)
    assert signature.return_annotation in (str, "str")


def test_every_sweep_of_app_py_reads_groups_and_every_group_is_swept() -> None:
    from app import app

    scheduled = {s.name for s in app.event_sources if isinstance(s, ScheduledEventConfig)}
    assert set(SWEEP_GROUPS) == scheduled - NOT_A_DUE_SWEEP
    assert all(SWEEP_GROUPS[name] for name in SWEEP_GROUPS)
    assert sorted(g for groups in SWEEP_GROUPS.values() for g in groups) == sorted(DUE_GROUPS)
    assert set(JOBS.sweeps) == scheduled  # the local runner runs every schedule


def test_the_test_clock_can_report_every_counter() -> None:
    reported = {counter for job in SCHEDULED_JOBS.values() for counter in job.counters.values()}
    assert reported == set(get_args(Reported))


def test_a_job_has_exactly_one_action() -> None:
    renew = SCHEDULED_JOBS["renewal"]
    with pytest.raises(TypeError):
        ScheduledJob(group="renewal", sweep="renewals", subject_key="subscription_id")
    with pytest.raises(TypeError):
        ScheduledJob(
            group="renewal",
            sweep="renewals",
            subject_key="subscription_id",
            action=lambda box, cid, sid, now: "renewed",
            snapshot_action=renew.snapshot_action,
        )
    other = renew.with_action(lambda box, cid, sid, now: f"ran {sid}")
    assert not other.takes_snapshot and not other.checks_due_itself
    assert other.run(BOX, "com_1", "sub_9", NOW, {"data": "{}", "version": 1}) == "ran sub_9"
    assert sweep_groups({"renewal": other, "expiration": SCHEDULED_JOBS["expiration"]}) == {
        "renewals": ("renewal",),
        "expirations": ("expiration",),
    }
