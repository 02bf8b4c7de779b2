"""Which business action handles each due group.

An action is `(container, community_id, subject_id, now) -> outcome` and lives in
chalicelib/services/scheduled.py (the subscription lifecycle). It re-reads its subject, acts
only if the subject is still in the state that made it due, and removes or moves the due
attributes in the same conditional write that does the work, so running it twice is harmless.

The registry is a container property (`container.scheduled_actions`), so tests can give a
container other actions without touching this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.dynamodb.due_index import DueGroup

if TYPE_CHECKING:
    from chalicelib.bootstrap import Container

Action = Callable[["Container", str, str, datetime], str]
Actions = Mapping[DueGroup, Action]

# The function of services/scheduled.py that handles each group.
ACTION_NAMES: dict[DueGroup, str] = {
    "renewal": "renew",
    "failed_payment": "process_failed_payment",
    "expiration": "expire",
    "pending_payment": "recover_pending_payment",
}

# What the test clock reports for each outcome an action returns (anything else: not counted).
OUTCOME_BUCKETS: dict[str, str] = {
    "renewed": "renewed",
    "renewal_failed": "renewals_failed",
    "retried": "retried",
    "retry_succeeded": "retried",
    "retry_failed": "retried",
    "cancelled": "cancelled",
    "grace_cancelled": "cancelled",
    "expired": "expired",
}


class SelfChecking:
    """An action that itself re-reads its subject and does nothing unless it is still due.

    The worker then skips its own re-check read: the action's read is the same item, so a
    redelivered message still costs one read and changes nothing, and a renewal costs one
    DynamoDB request less (DESIGN.md section 8 allows three).
    """

    def __init__(self, run: Action) -> None:
        self.run = run

    def __call__(self, box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        return self.run(box, community_id, subject_id, now)

    def with_snapshot(
        self,
        box: Container,
        community_id: str,
        subject_id: str,
        now: datetime,
        snapshot: dict[str, Any],
    ) -> str:
        """Run with the subject as the sweep read it, when the action can use that copy."""
        run: Any = self.run
        if getattr(run, "accepts_snapshot", False):
            return str(run(box, community_id, subject_id, now, snapshot=snapshot))
        return self.run(box, community_id, subject_id, now)


def _renew(
    box: Container,
    community_id: str,
    subject_id: str,
    now: datetime,
    snapshot: dict[str, Any] | None = None,
) -> str:
    known = box.subscriptions.from_item(snapshot) if snapshot is not None else None
    return box.scheduled.renew(community_id, subject_id, now, known)


_renew.accepts_snapshot = True  # type: ignore[attr-defined]


def default_actions() -> dict[DueGroup, Action]:
    """The real actions of services/scheduled.py (each re-reads its subject and checks it is
    due)."""
    return {
        "renewal": SelfChecking(_renew),
        "failed_payment": SelfChecking(
            lambda box, cid, sid, now: box.scheduled.process_failed_payment(cid, sid, now)
        ),
        "expiration": SelfChecking(lambda box, cid, sid, now: box.scheduled.expire(cid, sid, now)),
        "pending_payment": SelfChecking(
            lambda box, cid, sid, now: box.scheduled.recover_pending_payment(cid, sid, now)
        ),
    }
