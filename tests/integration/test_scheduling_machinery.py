"""Sweeps, work queue and worker on moto, driven by test actions shaped like the real ones."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.dynamodb.due_index import DUE_ATTRIBUTE_NAMES, format_due_at
from chalicelib.adapters.queues import WORKER_TIMEOUT_SECONDS
from chalicelib.jobs import sweeps, worker
from chalicelib.jobs.local_runner import JOBS, JobRegistry, drain_work_queue, run_once
from chalicelib.jobs.messages import BatchFailed, DueMessage, Received
from chalicelib.jobs.registry import SCHEDULED_JOBS, SWEEP_GROUPS, override_jobs
from chalicelib.observability import flush_metrics
from tests.integration.conftest import Env
from tests.integration.scheduling_fakes import COMMUNITY, FakeBilling, sub_key
from tests.support.atomic_requests import AtomicRequests
from tests.support.holding import DynamoRequests
from tests.support.log_capture import EmittedLogs, emitted_logs

__all__ = ["emitted_logs"]


@dataclass
class Sched:
    env: Env
    box: bootstrap.Container
    billing: FakeBilling
    dlq_url: str

    def queue_bodies(self, url: str) -> list[str]:
        bodies: list[str] = []
        while True:
            got = self.box.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60
            ).get("Messages", [])
            if not got:
                return bodies
            bodies += [m["Body"] for m in got]


@pytest.fixture
def sched(env: Env, aws: dict[str, str]) -> Iterator[Sched]:
    box = bootstrap.Container(replace(env.settings, test_clock_enabled=True), clock=env.clock)
    # The worker runs a batch's messages on threads, and some tests race two sweeps: DynamoDB
    # applies each conditional write atomically, in-process moto not across threads, so
    # requests are serialized at the AWS boundary (the races stay between requests).
    AtomicRequests(box.dynamodb, box.sqs)
    billing = FakeBilling(box)
    override_jobs(billing.jobs())
    bootstrap.override_container(box)
    yield Sched(env, box, billing, aws["dead_letter_queue_url"])
    override_jobs(None)


def test_sweep_reads_only_what_is_due(sched: Sched) -> None:
    now = sched.env.clock.now()
    for i in range(60):
        sched.billing.add(f"sub_future{i}", "renewal", now + timedelta(days=1 + i))
    for i in range(12):
        sched.billing.add(f"sub_due{i}", "renewal", now - timedelta(minutes=i))
    sched.billing.add("sub_retry", "failed_payment", now - timedelta(hours=1), status="failed")
    requests = DynamoRequests(sched.box.dynamodb)

    result = sweeps.sweep(sched.box, ("renewal",))

    assert result.sent == 12
    assert result.items_read == 12  # the 60 not yet due and the other group are never read
    assert "Scan" not in requests.ops
    assert requests.ops["Query"] == sched.box.settings.due_index_shards
    sent = [DueMessage.from_json(b) for b in sched.queue_bodies(sched.env.settings.work_queue_url)]
    assert sorted(m.subject_id for m in sent) == sorted(f"sub_due{i}" for i in range(12))
    assert {m.community_id for m in sent} == {COMMUNITY}
    assert {m.group for m in sent} == {"renewal"}


def test_sweep_pages_through_a_shard(sched: Sched) -> None:
    now = sched.env.clock.now()
    for i in range(25):
        sched.billing.add(f"sub_p{i}", "renewal", now - timedelta(seconds=i))
    queued: list[DueMessage] = []
    result = sweeps.sweep(sched.box, ("renewal",), sink=queued.extend, page_size=2)
    assert len(queued) == result.sent == 25
    assert len({m.subject_id for m in queued}) == 25
    assert result.queries > sched.box.settings.due_index_shards  # paged with Limit=2


def test_two_sweeps_running_at_once_renew_each_subscription_once(sched: Sched) -> None:
    now = sched.env.clock.now()
    ids = [f"sub_twice{i}" for i in range(30)]
    for sub_id in ids:
        sched.billing.add(sub_id, "renewal", now - timedelta(minutes=5))
    barrier = threading.Barrier(2)
    results: list[sweeps.SweepResult] = []

    def one_sweep() -> None:
        barrier.wait()
        results.append(sweeps.sweep(sched.box, ("renewal",)))

    threads = [threading.Thread(target=one_sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.sent for r in results) >= len(ids)

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one_worker() -> None:
        assert JOBS.worker is not None
        got = drain_work_queue(sched.box, JOBS.worker)
        with lock:
            outcomes.update(got)

    workers = [threading.Thread(target=one_worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    assert sorted(sched.billing.charges) == sorted((sub_id, 2) for sub_id in ids)
    assert outcomes["renewed"] == len(ids)
    assert outcomes["failed"] == 0
    for sub_id in ids:
        item = sched.billing.load(sub_id)
        assert item["period"]["N"] == "2"
        assert item["due_at"]["S"] > format_due_at(now)  # moved to the next period end


def test_redelivered_message_charges_nothing_new(sched: Sched) -> None:
    now = sched.env.clock.now()
    sched.billing.add("sub_redeliver", "renewal", now - timedelta(seconds=1))
    queued: list[DueMessage] = []
    sweeps.sweep(sched.box, ("renewal",), sink=queued.extend)
    (message,) = queued

    assert worker.process_message(sched.box, message) == "renewed"
    for _ in range(3):  # SQS delivers at least once: the same message again, and again
        assert worker.process_message(sched.box, message) == worker.NOT_DUE
    assert sched.billing.charges == [("sub_redeliver", 2)]
    assert sched.billing.calls["renew"] == 1  # the re-check stopped it before the action


def test_worker_ignores_an_item_no_longer_in_that_group(sched: Sched) -> None:
    now = sched.env.clock.now()
    sched.billing.add("sub_moved", "expiration", now - timedelta(seconds=1), status="expiring")
    stale = DueMessage(
        group="renewal",
        pk=sub_key("sub_moved")["pk"]["S"],
        sk="SUB",
        community_id=COMMUNITY,
        subject_id="sub_moved",
        due_at=format_due_at(now),
    )
    assert worker.process_message(sched.box, stale) == worker.NOT_DUE
    missing = replace(stale, pk=f"C#{COMMUNITY}#SUB#sub_gone", subject_id="sub_gone")
    assert worker.process_message(sched.box, missing) == worker.NOT_DUE
    assert sched.billing.calls == Counter()


def test_poison_message_lands_in_the_dead_letter_queue(sched: Sched) -> None:
    now = sched.env.clock.now()
    sched.billing.add("sub_good", "renewal", now - timedelta(seconds=1))
    queue_url = sched.env.settings.work_queue_url
    sweeps.sweep(sched.box, ("renewal",))
    sched.box.sqs.send_message(QueueUrl=queue_url, MessageBody="{not json")
    sched.box.sqs.send_message(
        QueueUrl=queue_url, MessageBody=json.dumps({"group": "nonsense", "pk": "x"})
    )
    assert JOBS.worker is not None

    outcomes = drain_work_queue(sched.box, JOBS.worker, retry_after_seconds=0)

    dead = sched.queue_bodies(sched.dlq_url)
    assert sorted(dead) == sorted(["{not json", json.dumps({"group": "nonsense", "pk": "x"})])
    assert sched.queue_bodies(queue_url) == []
    # Its batch partner was processed once and deleted, not retried into the DLQ with it.
    assert sched.billing.charges == [("sub_good", 2)]
    assert outcomes["renewed"] == 1
    assert outcomes["failed"] >= 2


def test_a_failing_action_is_retried_then_dead_lettered(sched: Sched) -> None:
    now = sched.env.clock.now()
    sched.billing.add("sub_broken", "expiration", now - timedelta(seconds=1), status="expiring")
    attempts: list[str] = []

    def broken(box: bootstrap.Container, community_id: str, sub_id: str, when: Any) -> str:
        attempts.append(sub_id)
        raise ConnectionError("Stripe timed out")

    override_jobs(
        {
            **sched.billing.jobs(),
            "expiration": SCHEDULED_JOBS["expiration"].with_action(broken),
        }
    )
    sweeps.sweep(sched.box, ("expiration",))
    assert JOBS.worker is not None
    drain_work_queue(sched.box, JOBS.worker, retry_after_seconds=0)

    (dead,) = sched.queue_bodies(sched.dlq_url)
    assert DueMessage.from_json(dead).subject_id == "sub_broken"
    assert len(attempts) == 5  # maxReceiveCount of the work queue's redrive policy


def test_a_failing_message_logs_why_with_its_message_community_and_subject(
    sched: Sched, emitted_logs: EmittedLogs
) -> None:
    """The on-call engineer finds the message and the subscription a failure was about."""
    now = sched.env.clock.now()
    sched.billing.add("sub_broken", "expiration", now - timedelta(seconds=1), status="expiring")

    def broken(box: bootstrap.Container, community_id: str, sub_id: str, when: Any) -> str:
        raise ConnectionError("Stripe timed out")

    override_jobs(
        {**sched.billing.jobs(), "expiration": SCHEDULED_JOBS["expiration"].with_action(broken)}
    )
    sweeps.sweep(sched.box, ("expiration",))
    [message] = sched.box.sqs.receive_message(
        QueueUrl=sched.env.settings.work_queue_url, MaxNumberOfMessages=10
    )["Messages"]
    record = Received(message["Body"], message["ReceiptHandle"], message["MessageId"])

    result = worker.handle_batch(sched.box, [record])

    assert result.errors == ["ConnectionError: Stripe timed out"]
    [failed] = emitted_logs.named("work_message_failed")
    assert failed["message_id"] == message["MessageId"]
    assert (failed["due_group"], failed["community_id"], failed["subject_id"]) == (
        "expiration",
        COMMUNITY,
        "sub_broken",
    )
    assert "Stripe timed out" in failed["exception"]


def test_a_batchs_metrics_count_each_outcome_apart(sched: Sched, emitted_logs: EmittedLogs) -> None:
    """A failed message is its own metric, not lost in a total with the renewals."""
    now = sched.env.clock.now()
    sched.billing.add("sub_ok", "renewal", now - timedelta(seconds=1))
    sweeps.sweep(sched.box, ("renewal",))
    queue_url = sched.env.settings.work_queue_url
    sched.box.sqs.send_message(QueueUrl=queue_url, MessageBody="poison")
    received = sched.box.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    records = [Received(m["Body"], m["ReceiptHandle"]) for m in received["Messages"]]

    worker.handle_batch(sched.box, records)
    flush_metrics()

    [line] = [json.loads(text) for text in emitted_logs.metric_lines()]
    assert (line["WorkMessages_renewed"], line["WorkMessages_failed"]) == ([1.0], [1.0])


def test_run_once_sweeps_and_drains_through_sqs(sched: Sched) -> None:
    now = sched.env.clock.now()
    sched.billing.add("sub_r", "renewal", now - timedelta(seconds=1))
    sched.billing.add("sub_f", "failed_payment", now - timedelta(seconds=1), status="failed")
    sched.billing.add("sub_e", "expiration", now - timedelta(seconds=1), status="expiring")
    sched.billing.add("sub_later", "renewal", now + timedelta(days=3))

    ours = JobRegistry(
        sweeps={name: JOBS.sweeps[name] for name in SWEEP_GROUPS}, worker=JOBS.worker
    )
    sent = run_once(sched.box, ours)

    assert sent == {"renewals": 1, "failed_payments": 1, "expirations": 1, "pending_payments": 0}
    assert sched.billing.charges == [("sub_r", 2), ("sub_f", 2)]
    assert sched.billing.load("sub_e")["status"]["S"] == "cancelled"
    assert not set(DUE_ATTRIBUTE_NAMES) & set(sched.billing.load("sub_e"))
    assert sched.queue_bodies(sched.env.settings.work_queue_url) == []
    assert run_once(sched.box, ours) == dict.fromkeys(sent, 0)  # nothing is due any more


def test_sweep_continues_from_its_cursor_while_the_queue_is_busy(sched: Sched) -> None:
    now = sched.env.clock.now()
    for i in range(5):
        sched.billing.add(f"sub_c{i}", "renewal", now - timedelta(minutes=10 - i))
    first = sweeps.sweep(sched.box, ("renewal",))
    assert first.sent == 5
    sched.billing.add("sub_c_new", "renewal", now + timedelta(minutes=1))
    sched.env.clock.advance(timedelta(minutes=2))

    second = sweeps.sweep(sched.box, ("renewal",))  # 5 still queued: only what is new
    assert second.sent == 1

    sched.queue_bodies(sched.env.settings.work_queue_url)  # take everything in flight
    sched.box.sqs.purge_queue(QueueUrl=sched.env.settings.work_queue_url)
    third = sweeps.sweep(sched.box, ("renewal",))  # queue empty: a full sweep again
    assert third.sent == 6


def test_scheduled_lambdas_and_sqs_worker_through_chalice(sched: Sched) -> None:
    now = sched.env.clock.now()
    sched.billing.add("sub_lambda", "renewal", now - timedelta(seconds=1))
    client = sched.env.client
    client.lambda_.invoke(
        "renewals",
        client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
        ),
    )
    bodies = sched.queue_bodies(sched.env.settings.work_queue_url)
    assert [DueMessage.from_json(b).subject_id for b in bodies] == ["sub_lambda"]

    event = client.events.generate_sqs_event(message_bodies=bodies * 2, queue_name="work")
    client.lambda_.invoke("worker", event)  # the same message twice in one batch

    assert sched.billing.charges == [("sub_lambda", 2)]
    assert sched.billing.load("sub_lambda")["period"]["N"] == "2"


def test_worker_lambda_failure_deletes_the_successes_and_raises(sched: Sched) -> None:
    now = sched.env.clock.now()
    sched.billing.add("sub_ok", "renewal", now - timedelta(seconds=1))
    queue_url = sched.env.settings.work_queue_url
    sweeps.sweep(sched.box, ("renewal",))
    sched.box.sqs.send_message(QueueUrl=queue_url, MessageBody="poison")
    received = sched.box.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    assert len(received) == 2
    records = [Received(m["Body"], m["ReceiptHandle"]) for m in received]

    with pytest.raises(BatchFailed) as failure:
        worker.process_batch(sched.box, records)

    assert len(failure.value.failed_receipts) == 1
    assert sched.queue_bodies(queue_url) == ["poison"]  # the success was deleted
    assert sched.billing.charges == [("sub_ok", 2)]


def test_a_sweep_out_of_time_stops_and_the_next_tick_goes_on_from_there(sched: Sched) -> None:
    now = sched.env.clock.now()
    ids = [f"sub_big{i}" for i in range(40)]
    for i, sub_id in enumerate(ids):
        sched.billing.add(sub_id, "renewal", now - timedelta(seconds=i + 1))

    first = sweeps.sweep(sched.box, ("renewal",), deadline=0.0)  # the Lambda's time is up

    assert not first.complete
    assert 0 < first.sent < len(ids)
    second = sweeps.sweep(sched.box, ("renewal",))  # the queue still holds the first batch
    assert second.complete
    bodies = sched.queue_bodies(sched.env.settings.work_queue_url)
    sent = sorted(DueMessage.from_json(b).subject_id for b in bodies)
    assert sent == sorted(ids)  # everything once: nothing lost, nothing sent twice


def test_the_worker_starts_no_message_it_could_not_finish_before_its_lambda_ends(
    sched: Sched,
) -> None:
    # A message against a hung Stripe fits the worker's timeout with room to spare.
    budget = worker.message_time_budget(sched.box.settings.stripe_timeout_seconds)
    assert 2 * budget <= WORKER_TIMEOUT_SECONDS
    now = sched.env.clock.now()
    sched.billing.add("sub_late", "renewal", now - timedelta(seconds=1))
    queue_url = sched.env.settings.work_queue_url
    sweeps.sweep(sched.box, ("renewal",))
    received = sched.box.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    records = [Received(m["Body"], m["ReceiptHandle"]) for m in received]

    with pytest.raises(BatchFailed) as failure:  # less time left than one message may take
        worker.process_batch(sched.box, records, deadline=time.monotonic() + budget / 2)

    assert failure.value.outcomes == Counter({worker.DEFERRED: 1})
    assert sched.billing.charges == []
    assert len(sched.queue_bodies(queue_url)) == 1  # back on the queue for the next invocation
    assert worker.process_batch(sched.box, records, deadline=time.monotonic() + 3 * budget) == (
        Counter({"renewed": 1})
    )
    assert sched.billing.charges == [("sub_late", 2)]
