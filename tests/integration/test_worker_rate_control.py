"""The worker under rate control (issue 16), on moto SQS: batches run concurrently, only failed
messages are reported to SQS, deferred messages go back as new messages with a delay, and the
sweep spaces each community's charges at its Stripe budget."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb.due_index import due_attributes, shard_of
from chalicelib.bootstrap import Container
from chalicelib.domain.rate_control import Deferred
from chalicelib.jobs import sweeps, worker
from chalicelib.jobs.messages import DueMessage, Received
from chalicelib.jobs.registry import SCHEDULED_JOBS, override_jobs
from tests.integration.conftest import Env
from tests.integration.scheduling_fakes import COMMUNITY, FakeBilling
from tests.support.fakes import FakeStripeBudget

WALL = 1_900_000_000.0  # the worker's and the sweep's wall clock in these tests


class SentMessages:
    """What the code asked SQS to send (a botocore hook: the parameters as sent)."""

    def __init__(self, sqs: Any) -> None:
        self.single: list[dict[str, Any]] = []
        self.batches: list[list[dict[str, Any]]] = []
        sqs.meta.events.register("provide-client-params.sqs.SendMessage", self._one)
        sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", self._batch)

    def _one(self, params: dict[str, Any], **_: Any) -> None:
        self.single.append(dict(params))

    def _batch(self, params: dict[str, Any], **_: Any) -> None:
        self.batches.append([dict(e) for e in params["Entries"]])


@pytest.fixture
def box(env: Env, aws: dict[str, str]) -> Iterator[Container]:
    box = bootstrap.Container(env.settings, clock=env.clock)
    bootstrap.override_container(box)
    yield box
    override_jobs(None)


def message(subject: str, **fields: Any) -> DueMessage:
    return DueMessage(
        group="expiration",
        pk=f"C#{COMMUNITY}#SUB#{subject}",
        sk="SUB",
        community_id=COMMUNITY,
        subject_id=subject,
        due_at="2026-01-15T12:00:00.000000Z",
        **fields,
    )


def received(*messages: DueMessage) -> list[Received]:
    return [Received(m.to_json(), f"receipt-{i}", f"id-{i}") for i, m in enumerate(messages)]


def install(action: Any) -> None:
    job = SCHEDULED_JOBS["expiration"].with_action(action, checks_due_itself=True)
    override_jobs({**SCHEDULED_JOBS, "expiration": job})


def test_the_lambda_runs_a_batch_concurrently_and_reports_only_the_failed_message(
    env: Env, box: Container
) -> None:
    threads: set[str] = set()
    lock = threading.Lock()

    def slow(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        with lock:
            threads.add(threading.current_thread().name)
        time.sleep(0.3)  # a Stripe call
        return "expired"

    install(slow)
    bodies = [message(f"sub_{i}").to_json() for i in range(8)] + ["poison"]
    event = env.client.events.generate_sqs_event(message_bodies=bodies, queue_name="work")
    poison_id = event["Records"][-1]["messageId"]

    started = time.monotonic()
    answer = env.client.lambda_.invoke("worker", event).payload
    elapsed = time.monotonic() - started

    assert answer == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    assert len(threads) > 1
    assert elapsed < 8 * 0.3 / 2  # not one after another


def test_a_message_the_budget_defers_goes_back_as_a_new_message_with_a_delay(
    box: Container,
) -> None:
    def no_budget(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        raise Deferred("no Stripe budget left this moment", "acct_big", written=False)

    install(no_budget)
    sent = SentMessages(box.sqs)
    snapshot = {"data": "{}", "version": 3}

    outcomes = worker.process_batch(box, received(message("sub_1", snapshot=snapshot)))

    assert outcomes == {worker.RATE_DEFERRED: 1}  # done: its copy is on the queue
    [again] = sent.single
    assert again["QueueUrl"] == box.settings.work_queue_url
    assert 1 <= again["DelaySeconds"] <= worker.DEFER_BASE_SECONDS
    body = DueMessage.from_json(again["MessageBody"])
    assert body == replace(message("sub_1"), deferrals=1)  # the snapshot may be stale by then


def test_a_deferred_message_comes_back_at_the_accounts_next_free_slot_not_a_back_off(
    box: Container,
) -> None:
    def no_budget(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        raise Deferred("no Stripe budget", "acct_big", written=False, retry_after=7.6)

    def rate_limited(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        raise Deferred("Stripe answered 429", "acct_big", written=True, retry_after=40.0)

    sent = SentMessages(box.sqs)
    install(no_budget)
    # However often it was deferred before: the slot, not 2 s x 2^12.
    worker.process_batch(box, received(message("sub_1", deferrals=12)))
    install(rate_limited)
    worker.process_batch(box, received(message("sub_2")))

    slot, resume = sent.single
    assert slot["DelaySeconds"] == 7  # at its slot or up to a second before it
    assert DueMessage.from_json(slot["MessageBody"]).deferrals == 13
    # A charge in flight is sent again within RESUME_DELAY_MAX_SECONDS whatever the slot.
    assert resume["DelaySeconds"] == worker.RESUME_DELAY_MAX_SECONDS


def test_a_deferred_charge_in_flight_comes_back_within_seconds_however_often(
    box: Container,
) -> None:
    def rate_limited(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        raise Deferred("Stripe answered 429 (rate_limit)", "acct_big", written=True)

    install(rate_limited)
    sent = SentMessages(box.sqs)

    worker.process_batch(box, received(message("sub_1", deferrals=12)))

    [again] = sent.single
    assert again["DelaySeconds"] <= worker.RESUME_DELAY_MAX_SECONDS
    assert DueMessage.from_json(again["MessageBody"]).deferrals == 13


def test_a_message_deferred_too_often_fails_instead(box: Container) -> None:
    def no_budget(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        raise Deferred("no Stripe budget left this moment", "acct_big", written=False)

    install(no_budget)
    result = worker.handle_batch(
        box, received(message("sub_1", deferrals=worker.MAX_DEFERRALS)), wall=lambda: WALL
    )
    assert result.outcomes == {"failed": 1}
    assert worker.batch_response(result) == {"batchItemFailures": [{"itemIdentifier": "id-0"}]}


def test_a_message_for_later_waits_on_the_queue_not_in_the_worker(box: Container) -> None:
    ran: list[str] = []

    def act(box: Container, community_id: str, subject_id: str, now: datetime) -> str:
        ran.append(subject_id)
        return "expired"

    install(act)
    sent = SentMessages(box.sqs)
    far, near, now = (
        message("sub_far", not_before=WALL + 2000),
        message("sub_near", not_before=WALL + 100),
        message("sub_now", not_before=WALL + 0.5),
    )

    result = worker.handle_batch(box, received(far, near, now), wall=lambda: WALL)

    assert result.outcomes == {worker.WAITING: 2, "expired": 1}
    assert ran == ["sub_now"]
    by_subject = {DueMessage.from_json(m["MessageBody"]).subject_id: m for m in sent.single}
    # Past SQS's 15 minutes: the longest delay, and the next worker sends it on again.
    assert by_subject["sub_far"]["DelaySeconds"] == 900
    assert DueMessage.from_json(by_subject["sub_far"]["MessageBody"]).not_before == WALL + 2000
    assert by_subject["sub_near"]["DelaySeconds"] == 100
    assert DueMessage.from_json(by_subject["sub_near"]["MessageBody"]).not_before is None
    assert all(DueMessage.from_json(m["MessageBody"]).deferrals == 0 for m in sent.single)


def test_the_sweep_spaces_each_communitys_charges_at_its_budget(env: Env, box: Container) -> None:
    billing = FakeBilling(box)
    now = env.clock.now()
    for i in range(5):
        billing.add(f"sub_{i}", "renewal", now - timedelta(minutes=i + 1))
    billing.add("sub_gone", "expiration", now - timedelta(minutes=1))
    box.stripe_budget = FakeStripeBudget(spacing=0.5)
    sent = SentMessages(box.sqs)

    sweeps.sweep(box, ("renewal", "expiration"), wall=lambda: WALL)

    entries = [e for batch in sent.batches for e in batch]
    groups = {json.loads(e["MessageBody"])["group"]: e for e in entries}
    renewals = sorted(
        (DueMessage.from_json(e["MessageBody"]).not_before, e["DelaySeconds"])
        for e in entries
        if json.loads(e["MessageBody"])["group"] == "renewal"
    )
    # Visible at the slot or up to a second before it (rounded down), never after it.
    assert renewals == [(WALL, 0), (WALL + 0.5, 0), (WALL + 1, 1), (WALL + 1.5, 1), (WALL + 2, 2)]
    # An expiration calls no Stripe: not spaced.
    assert groups["expiration"]["DelaySeconds"] == 0
    assert DueMessage.from_json(groups["expiration"]["MessageBody"]).not_before is None


def test_a_sweep_sends_its_batches_on_several_threads_each_item_once_with_its_delay(
    env: Env, box: Container
) -> None:
    """One SendMessageBatch at a time left a deployed sweep waiting on SQS most of its tick
    (~300 messages/s, bench/README.md); it now sends a round's batches on SEND_THREADS
    threads. Every due item is still sent once, its delay still from its own slot, and the
    cursor still at the last item sent."""
    billing = FakeBilling(box)
    now = env.clock.now()
    due = [f"sub_t{i:03d}" for i in range(250)]
    for i, sub_id in enumerate(due):
        billing.add(sub_id, "renewal", now - timedelta(seconds=i + 1))
    box.stripe_budget = FakeStripeBudget(spacing=0.1)
    sent = SentMessages(box.sqs)
    threads: set[str] = set()
    box.sqs.meta.events.register(
        "before-call.sqs.SendMessageBatch",
        lambda **_: threads.add(threading.current_thread().name),
    )

    result = sweeps.sweep(box, ("renewal",), wall=lambda: WALL)

    entries = [e for batch in sent.batches for e in batch]
    messages = [DueMessage.from_json(e["MessageBody"]) for e in entries]
    assert sorted(m.subject_id for m in messages) == sorted(due)
    assert all(
        e["DelaySeconds"] == min(int((m.not_before or WALL) - WALL), 900)
        for e, m in zip(entries, messages, strict=True)
    )
    assert len(threads) > 1 and threading.current_thread().name not in threads
    assert result.sent == len(due)
    newest_due = max(m.due_at for m in messages)
    assert newest_due in result.cursors["renewal"].values()


def test_the_sweep_sends_each_communitys_next_charges_first_whatever_shard_they_are_in(
    env: Env, box: Container
) -> None:
    now = env.clock.now()
    shards = box.settings.due_index_shards
    big = [f"sub_big{i}" for i in range(40)]
    small = [f"sub_small{i}" for i in range(4)]
    for community, ids in (("com_big", big), ("com_small", small)):
        for i, sub_id in enumerate(ids):
            attrs = due_attributes(sub_id, "renewal", now - timedelta(minutes=i + 1), shards)
            box.dynamodb.put_item(
                TableName=env.settings.table_name,
                Item={
                    "pk": {"S": f"C#{community}#SUB#{sub_id}"},
                    "sk": {"S": "SUB"},
                    "id": {"S": sub_id},
                    **{name: {"S": value} for name, value in attrs.items()},
                },
            )
    # The small community's items sit in shards the sweep reads after the big one's.
    assert len({shard_of(s, shards) for s in small}) > 1
    box.stripe_budget = FakeStripeBudget(spacing=0.5)
    sent = SentMessages(box.sqs)

    sweeps.sweep(box, ("renewal",), wall=lambda: WALL)

    order = [
        DueMessage.from_json(e["MessageBody"]).subject_id for batch in sent.batches for e in batch
    ]
    assert sorted(order) == sorted(big + small)
    # Each community's k-th charge before any community's (k+1)-th: the small community's
    # four are among the first eight sent, not spread over the whole sweep.
    assert set(small) <= set(order[: 2 * len(small)])


def test_spacing_is_per_community_so_a_small_one_is_never_behind_a_big_one() -> None:
    spacing = sweeps.Spacing(0.1, lambda: WALL)
    big = [spacing.apply(replace(message(f"b{i}"), community_id="com_big")) for i in range(1000)]
    small = [spacing.apply(replace(message(f"s{i}"), community_id="com_small")) for i in range(10)]
    assert big[-1].not_before == pytest.approx(WALL + 99.9)
    assert [m.not_before for m in small] == pytest.approx([WALL + i * 0.1 for i in range(10)])


def test_a_slow_sweep_spaces_from_when_it_sends() -> None:
    now = [WALL]
    spacing = sweeps.Spacing(0.1, lambda: now[0])
    first = spacing.apply(message("a"))
    now[0] += 5.0  # the sweep took its time reading the next page
    later = [spacing.apply(message(f"b{i}")) for i in range(3)]
    assert first.not_before == WALL
    assert [m.not_before for m in later] == pytest.approx([WALL + 5.0, WALL + 5.1, WALL + 5.2])
