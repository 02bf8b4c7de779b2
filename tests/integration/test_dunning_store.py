"""The dunning ledger on DynamoDB (moto): email claims survive replays and expire after a crash;
the last reminder sits in the due index once per grace period (adapters/dynamodb/dunning.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.adapters.dynamodb.due_index import DueIndex, shard_of
from chalicelib.adapters.dynamodb.dunning import CLAIM_LEASE_SECONDS, DunningStore
from chalicelib.domain.dunning import Reminder
from tests.integration.conftest import TABLE_NAME
from tests.support.moto_clients import moto_client

SHARDS = 16
GRACE_END = datetime(2026, 3, 10, 12, tzinfo=UTC)


class Wall:
    def __init__(self) -> None:
        self.seconds = 1_800_000_000.0

    def __call__(self) -> float:
        return self.seconds


def store(wall: Wall) -> DunningStore:
    client = moto_client("dynamodb", region_name="us-east-1")
    return DunningStore(client, TABLE_NAME, SHARDS, wall=wall)


def due_now(subscription_id: str, now: datetime) -> list[str]:
    index = DueIndex(moto_client("dynamodb", region_name="us-east-1"), TABLE_NAME)
    page = index.due_page("dunning_reminder", shard_of(subscription_id, SHARDS), now, 10)
    return [entry.due_at for entry in page.entries if entry.subject_id == subscription_id]


def test_an_email_is_claimed_once_and_a_crashed_claim_expires(aws: object) -> None:
    wall = Wall()
    ledger = store(wall)

    assert ledger.claim("com_1", "sub_1", "payment_failed#evt_1")
    assert not ledger.claim("com_1", "sub_1", "payment_failed#evt_1")  # a replay
    assert ledger.claim("com_1", "sub_1", "payment_failed#evt_2")  # another event
    assert ledger.claim("com_2", "sub_1", "payment_failed#evt_1")  # another community

    ledger.mark_sent("com_1", "sub_1", "payment_failed#evt_1", "ses-1")
    wall.seconds += CLAIM_LEASE_SECONDS * 10
    assert not ledger.claim("com_1", "sub_1", "payment_failed#evt_1")  # sent: never again
    assert ledger.email_status("com_1", "sub_1", "payment_failed#evt_1") == "sent"

    # evt_2's sender died without marking it: after its lease, it is taken again.
    assert ledger.claim("com_1", "sub_1", "payment_failed#evt_2")
    assert not ledger.claim("com_1", "sub_1", "payment_failed#evt_2")  # within the new lease

    # A send that failed for a while gives the claim back at once.
    ledger.release("com_1", "sub_1", "payment_failed#evt_2")
    assert ledger.claim("com_1", "sub_1", "payment_failed#evt_2")
    ledger.mark_failed("com_1", "sub_1", "payment_failed#evt_2", "MessageRejected")
    wall.seconds += CLAIM_LEASE_SECONDS * 10
    assert not ledger.claim("com_1", "sub_1", "payment_failed#evt_2")  # failed for good
    ledger.release("com_1", "sub_1", "payment_failed#evt_2")  # a settled claim stays
    assert ledger.email_status("com_1", "sub_1", "payment_failed#evt_2") == "failed"


def test_the_reminder_is_due_once_per_grace_period(aws: object) -> None:
    ledger = store(Wall())
    due = GRACE_END - timedelta(hours=48)
    first = Reminder("sub_1", GRACE_END, due, 5000, "usd")
    ledger.schedule_reminder("com_1", first)

    assert due_now("sub_1", due - timedelta(seconds=1)) == []
    assert len(due_now("sub_1", due)) == 1
    assert ledger.reminder("com_1", "sub_1") == first

    ledger.reminder_done("com_1", "sub_1", GRACE_END)
    assert due_now("sub_1", due) == []
    # The retry failures of the same grace period schedule it again: it stays done.
    ledger.schedule_reminder("com_1", Reminder("sub_1", GRACE_END, due, 5000, "usd"))
    assert due_now("sub_1", due) == []

    # Paid, then failed again next month: a new grace period, a new reminder.
    later_end = GRACE_END + timedelta(days=31)
    later = Reminder("sub_1", later_end, later_end - timedelta(hours=48), 5000, "usd")
    ledger.schedule_reminder("com_1", later)
    assert len(due_now("sub_1", later.due_at)) == 1
    ledger.reminder_done("com_1", "sub_1", GRACE_END)  # a late "done" of the old one
    assert len(due_now("sub_1", later.due_at)) == 1
    assert ledger.reminder("com_1", "sub_1") == later
    # The old failure's record published again (a replay, a late publication): the current
    # grace period's reminder stays (it was put back to the old one, then found moot).
    ledger.schedule_reminder("com_1", first)
    assert ledger.reminder("com_1", "sub_1") == later
    assert len(due_now("sub_1", later.due_at)) == 1
