"""Every scheduled action, one entry per due group: what runs, from which sweep, what it counts.

A new scheduled action is one `ScheduledJob` in `SCHEDULED_JOBS` (plus its group in
adapters/dynamodb/due_index.py's `DueGroup`, which the adapters write, and, for a new sweep,
its schedule in app.py). tests/unit/test_jobs_registry.py checks the table at import.

An action is `(container, community_id, subject_id, now[, snapshot]) -> outcome`: it hands
the subject to the lifecycle use case of `ScheduledActions` (services/scheduled.py), which
re-reads its subject (or uses the sweep's snapshot), acts only if the subject is still due for
exactly that action, and moves or removes the due attributes in the same conditional write that
does the work, so running it twice is harmless. The use cases are reached through the container
at run time, so importing this table loads no service or SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.adapters.dynamodb.due_index import DueGroup

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

# The subscription as the sweep read it ({"data": str, "version": int}); see DueMessage.
Snapshot = dict[str, Any]
Action = Callable[["Container", str, str, datetime], str]
SnapshotAction = Callable[["Container", str, str, datetime, Snapshot | None], str]
# What POST /v1/test-clock/advance reports (API.md's four, and declined renewals).
Reported = Literal["renewed", "retried", "cancelled", "expired", "renewals_failed"]
# The correlation field the worker logs the subject under.
SubjectKey = Literal["subscription_id", "payment_id"]


@dataclass(frozen=True)
class ScheduledJob:
    """One due group's action. Give `action`, or `snapshot_action` for one that also takes the
    subject as the sweep read it (it saves the action its read; the sweep then sends it)."""

    group: DueGroup
    sweep: str  # the schedule in app.py that reads this group
    subject_key: SubjectKey
    counters: Mapping[str, Reported] = field(default_factory=dict)  # outcome -> reported counter
    action: Action | None = None
    snapshot_action: SnapshotAction | None = None
    # The action re-reads its subject and does nothing unless it is still due, so the worker
    # skips its own re-check read (a renewal then costs one DynamoDB request less).
    checks_due_itself: bool = True
    # The action charges on Stripe: the sweep spaces its messages per community at the Stripe
    # budget (DESIGN.md, rate control).
    calls_stripe: bool = False

    def __post_init__(self) -> None:
        if (self.action is None) == (self.snapshot_action is None):
            raise TypeError(f"{self.group}: give exactly one of action and snapshot_action")

    @property
    def takes_snapshot(self) -> bool:
        return self.snapshot_action is not None

    def run(
        self,
        box: Container,
        community_id: str,
        subject_id: str,
        now: datetime,
        snapshot: Snapshot | None = None,
    ) -> str:
        if self.snapshot_action is not None:
            return self.snapshot_action(box, community_id, subject_id, now, snapshot)
        assert self.action is not None  # __post_init__
        return self.action(box, community_id, subject_id, now)

    def with_action(self, action: Action, *, checks_due_itself: bool = False) -> ScheduledJob:
        """The same job running another action (tests); the worker re-checks by default."""
        return replace(
            self, action=action, snapshot_action=None, checks_due_itself=checks_due_itself
        )


def renew(
    box: Container, community_id: str, subject_id: str, now: datetime, snapshot: Snapshot | None
) -> str:
    known = box.subscriptions.from_item(snapshot) if snapshot is not None else None
    return box.scheduled.renew(community_id, subject_id, now, known)


def process_failed_payment(
    box: Container, community_id: str, subject_id: str, now: datetime
) -> str:
    return box.scheduled.process_failed_payment(community_id, subject_id, now)


def expire(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
    return box.scheduled.expire(community_id, subject_id, now)


def recover_pending_payment(
    box: Container, community_id: str, subject_id: str, now: datetime
) -> str:
    return box.scheduled.recover_pending_payment(community_id, subject_id, now)


def recover_pending_refunds(
    box: Container, community_id: str, subject_id: str, now: datetime
) -> str:
    return box.scheduled.recover_pending_refunds(community_id, subject_id, now)


def repair_links(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
    return box.subscription_links.repair(community_id, subject_id, now)


def send_last_reminder(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
    return box.dunning.send_last_reminder(community_id, subject_id, now)


SCHEDULED_JOBS: dict[DueGroup, ScheduledJob] = {
    "renewal": ScheduledJob(
        group="renewal",
        sweep="renewals",
        subject_key="subscription_id",
        snapshot_action=renew,
        counters={"renewed": "renewed", "renewal_failed": "renewals_failed"},
        calls_stripe=True,
    ),
    "failed_payment": ScheduledJob(
        group="failed_payment",
        sweep="failed_payments",
        subject_key="subscription_id",
        action=process_failed_payment,
        calls_stripe=True,
        counters={
            "retry_succeeded": "retried",
            "retry_failed": "retried",
            "grace_cancelled": "cancelled",
        },
    ),
    "expiration": ScheduledJob(
        group="expiration",
        sweep="expirations",
        subject_key="subscription_id",
        action=expire,
        counters={"expired": "expired"},
    ),
    "pending_payment": ScheduledJob(
        group="pending_payment",
        sweep="pending_payments",
        subject_key="payment_id",
        action=recover_pending_payment,
    ),
    "pending_refund": ScheduledJob(
        group="pending_refund",
        sweep="pending_payments",  # the same recovery sweep: a payment is never in both groups
        subject_key="payment_id",
        action=recover_pending_refunds,
    ),
    # Profile links a crash left unwritten after their subscription's transaction.
    "links": ScheduledJob(
        group="links",
        sweep="pending_payments",
        subject_key="subscription_id",
        action=repair_links,
    ),
    # The dunning "last reminder", 48 h before a failed_payment subscription's grace ends.
    "dunning_reminder": ScheduledJob(
        group="dunning_reminder",
        sweep="failed_payments",
        subject_key="subscription_id",
        action=send_last_reminder,
    ),
}


def sweep_groups(jobs: Mapping[DueGroup, ScheduledJob]) -> dict[str, tuple[DueGroup, ...]]:
    """Sweep name -> the groups it reads, in registry order."""
    groups: dict[str, tuple[DueGroup, ...]] = {}
    for group, job in jobs.items():
        groups[job.sweep] = (*groups.get(job.sweep, ()), group)
    return groups


# The sweeps, by name (app.py's schedules), and the due-index groups each one reads.
SWEEP_GROUPS = sweep_groups(SCHEDULED_JOBS)

_overridden: Mapping[DueGroup, ScheduledJob] | None = None


def current_jobs() -> Mapping[DueGroup, ScheduledJob]:
    """The jobs the worker, the sweeps and the test clock run: SCHEDULED_JOBS, unless a test
    installed others with `override_jobs`."""
    return SCHEDULED_JOBS if _overridden is None else _overridden


def override_jobs(jobs: Mapping[DueGroup, ScheduledJob] | None) -> None:
    """Install other jobs (tests), or None to go back to SCHEDULED_JOBS."""
    global _overridden
    _overridden = jobs
