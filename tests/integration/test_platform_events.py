"""Events to the platform through the HTTP API, moto and a real local HTTP receiver: the
outbox written with each change, published (here synchronously, as the test clock does),
signed, delivered in per-subject order, retried after an outage, redelivered on request."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib.adapters.event_bus import ensure_event_bus
from chalicelib.adapters.webhook_sender import Answer, post
from chalicelib.domain.errors import Unavailable
from chalicelib.domain.platform_events import PlatformEvent
from chalicelib.jobs.event_publisher import handle_stream, publish_now
from chalicelib.services.event_delivery import (
    DRAIN_BUDGET_SECONDS,
    EventPublisher,
    MailNotifier,
    ProfileAccess,
)
from receivers.billing_signature import verify_signature
from tests.integration.conftest import PLATFORM_KEY, Env, moto_app_env
from tests.support.holding import DynamoRequests, Held
from tests.support.localstripe import localstripe_url, new_card, stripe_for
from tests.support.moto_clients import moto_client
from tests.support.receiver import Receiver, in_subject_order, rebuild_access
from tests.support.webhook_flow import call, community, ok

__all__ = ["localstripe_url"]
BUS = "membership-billing-test"
SENDER = "billing@example.com"


@pytest.fixture
def env(localstripe_url: str) -> Iterator[Env]:
    with moto_app_env(localstripe_url, email_sender=SENDER) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().up()
    yield running
    running.down()


@pytest.fixture
def bus_env(localstripe_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("BILLING_EVENT_BUS_NAME", BUS)
    with moto_app_env(localstripe_url) as running:
        yield running


@pytest.fixture
def bus_queue(bus_env: Env) -> str:
    """The stage's bus with a rule sending every membership-billing event to an SQS queue."""
    events = moto_client("events", region_name="us-east-1")
    sqs = moto_client("sqs", region_name="us-east-1")
    ensure_event_bus(events, BUS)
    queue_url = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="tap", EventBusName=BUS, EventPattern=json.dumps({"source": ["membership-billing"]})
    )
    events.put_targets(Rule="tap", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return str(queue_url)


def free_family(
    env: Env, key: str, *names: str, month_price: int = 0
) -> tuple[dict[str, Any], list[str]]:
    """An active subscription with these members, on a free plan (no Stripe) unless a
    `month_price` is given."""
    plan = ok(
        env.client, "post", "/v1/plans", key, {"name": "Free", "prices": {"month": month_price}}
    )
    owner = ok(
        env.client,
        "post",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": names[0], "email": f"{names[0].lower()}@example.com"},
    )
    method_id = new_card(stripe_for(env.settings.stripe_api_base or ""), "4242424242424242")
    ok(
        env.client,
        "post",
        f"/v1/profiles/{owner['id']}/payment-methods",
        key,
        {"stripe_payment_method_id": method_id},
    )
    member_ids = [owner["id"]]
    for name in names[1:]:
        kid = ok(
            env.client,
            "post",
            "/v1/profiles",
            key,
            {"kind": "dependent", "name": name, "account_holder_id": owner["id"]},
        )
        member_ids.append(kid["id"])
    sub = ok(
        env.client,
        "post",
        "/v1/subscriptions",
        key,
        {
            "plan_id": plan["id"],
            "owner_id": owner["id"],
            "member_ids": member_ids,
            "billing_cycle": "month",
            "payment_method_id": method_id,
        },
    )
    active = ok(env.client, "post", f"/v1/subscriptions/{sub['id']}/activate", key)
    assert active["status"] == "active"
    return active, member_ids


def register(
    env: Env, key: str, url: str, events: list[str] | None = None, **extra: str
) -> dict[str, Any]:
    status, endpoint = call(
        env.client,
        "post",
        "/v1/webhook-endpoints",
        key,
        {"url": url, "enabled_events": events or ["*"], "description": "platform", **extra},
    )
    assert status == 201, endpoint
    return dict(endpoint)


def test_a_lifecycle_arrives_once_signed_in_order_and_rebuilds_access(
    env: Env, receiver: Receiver
) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    endpoint = register(env, key, receiver.url)
    assert endpoint["secret"].startswith("whsec_") and endpoint["id"].startswith("we_")
    assert endpoint["status"] == "enabled" and endpoint["enabled_events"] == ["*"]
    listed = ok(env.client, "get", "/v1/webhook-endpoints", key)["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

    sub, members = free_family(env, key, "Maria", "Sam")
    publish_now(env.container)
    ok(env.client, "delete", f"/v1/subscriptions/{sub['id']}/members/{members[1]}?at=now", key)
    publish_now(env.container)
    ok(env.client, "post", f"/v1/subscriptions/{sub['id']}/cancel", key, {"at": "now"})
    publish_now(env.container)

    received = receiver.events()
    ids = [e["id"] for e in received]
    assert len(ids) == len(set(ids))
    types = [e["type"] for e in received]
    for expected in (
        "plan.created",
        "subscription.created",
        "member.added",
        "subscription.activated",
        "access.granted",
        "member.removed",
        "access.revoked",
        "subscription.cancelled",
    ):
        assert expected in types, (expected, types)
    assert in_subject_order(received)
    for delivery in receiver.received:
        assert delivery.headers["Billing-Event-Id"] == delivery.event["id"]
        signature = delivery.headers["Billing-Signature"]
        assert verify_signature(delivery.raw, signature, endpoint["secret"])
        assert not verify_signature(delivery.raw, signature, "whsec_wrong")
        assert not verify_signature(delivery.raw + b" ", signature, endpoint["secret"])
    rebuilt = rebuild_access(received)
    for profile_id in members:
        assert rebuilt[profile_id] == ok(
            env.client, "get", f"/v1/profiles/{profile_id}/access", key
        )
    assert [e["type"] for e in received if e["subject_id"] == members[1]] == [
        "access.granted",
        "access.revoked",
    ]

    by_subject = ok(env.client, "get", f"/v1/events?subject_id={sub['id']}&limit=100", key)
    assert {e["subject_id"] for e in by_subject["data"]} == {sub["id"]}
    sequences = [e["sequence"] for e in by_subject["data"]]
    assert sequences == sorted(sequences, reverse=True)  # newest first
    granted = ok(env.client, "get", "/v1/events?type=access.granted", key)["data"]
    assert {e["subject_id"] for e in granted} == set(members)

    deliveries = ok(env.client, "get", f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", key)
    assert deliveries["data"] and {d["status"] for d in deliveries["data"]} == {"succeeded"}
    assert deliveries["data"][0]["response_status"] == 200
    assert len(deliveries["data"][0]["response_body"]) == 1024


def test_an_outage_is_retried_with_backoff_and_keeps_per_subject_order(
    env: Env, receiver: Receiver
) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    endpoint = register(env, key, receiver.url)
    receiver.down()
    sub, _ = free_family(env, key, "Ana", "Kim")
    ok(env.client, "post", f"/v1/subscriptions/{sub['id']}/cancel", key, {"at": "period_end"})
    publish_now(env.container)
    attempts = ok(env.client, "get", f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", key)
    [failed] = attempts["data"]  # the first delivery failed; the rest wait behind it
    assert failed["status"] == "failed" and failed["response_status"] is None
    assert failed["attempted_at"].endswith("Z")  # RFC 3339 UTC, as every time in the API
    publish_now(env.container)  # the backoff is not over: nothing is tried
    again = ok(env.client, "get", f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", key)
    assert len(again["data"]) == 1

    receiver.up()
    env.clock.advance(timedelta(seconds=1))
    publish_now(env.container)
    received = receiver.events()
    ids = [e["id"] for e in received]
    assert len(ids) == len(set(ids)) and in_subject_order(received)
    expected = ok(env.client, "get", "/v1/events?limit=100", key)["data"]
    assert set(ids) == {e["id"] for e in expected}
    assert "subscription.expiring" in [e["type"] for e in received]


def test_three_days_of_failures_disable_the_endpoint_and_redeliver_sends_one_again(
    env: Env, receiver: Receiver
) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    endpoint = register(
        env, key, receiver.url, ["subscription.activated"], notification_email="ops@gym.example"
    )
    free_family(env, key, "Lea")
    ses = moto_client("ses", region_name="us-east-1")
    sent_before = ses.get_send_quota()["SentLast24Hours"]
    receiver.answer_status = 500
    publish_now(env.container)
    for _ in range(3):
        env.clock.advance(timedelta(days=1))
        publish_now(env.container)
    current = ok(env.client, "get", f"/v1/webhook-endpoints/{endpoint['id']}", key)
    assert current["status"] == "disabled"
    assert ses.get_send_quota()["SentLast24Hours"] == sent_before + 1  # the community is told
    told = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages[-1]
    assert told.destinations["ToAddresses"] == ["ops@gym.example"]
    assert told.subject == f"Webhook endpoint {endpoint['id']} disabled"
    # when the failures began, in the emails' time format (rules/emails.md), not ISO 8601
    assert re.search(r"has failed since [A-Z][a-z]+ \d{1,2}, \d{4} at \d\d:\d\d UTC,", told.body)
    assert {e["type"] for e in receiver.events()} == {"subscription.activated"}

    receiver.answer_status = 200
    [event] = ok(env.client, "get", "/v1/events?type=subscription.activated", key)["data"]
    ok(env.client, "patch", f"/v1/webhook-endpoints/{endpoint['id']}", key, {"status": "enabled"})
    publish_now(env.container)  # re-enabled: what it missed goes out
    assert receiver.events()[-1]["id"] == event["id"]
    answer = ok(env.client, "post", f"/v1/events/{event['id']}/redeliver", key)
    assert answer["deliveries"][0]["status"] == "succeeded"
    assert [e["id"] for e in receiver.events()][-2:] == [event["id"], event["id"]]
    status, _ = call(env.client, "post", "/v1/events/evt_unknown/redeliver", key)
    assert status == 404


def test_payment_and_plan_events_carry_the_objects_the_api_shows_times_in_utc_z(
    env: Env, receiver: Receiver
) -> None:
    """API.md: payment.* carry the payment and plan.* the plan, as GET shows them (plus
    `object` and `community_id`); every time is RFC 3339 UTC with `Z`, as in the API."""
    community_id, key = community(env.client, PLATFORM_KEY)
    wanted = ["payment.succeeded", "plan.created", "subscription.activated"]
    register(env, key, receiver.url, wanted)
    sub, _ = free_family(env, key, "Ada", month_price=2500)
    publish_now(env.container)

    by_type = {e["type"]: e for e in receiver.events()}
    [payment] = ok(env.client, "get", f"/v1/payments?subscription_id={sub['id']}", key)["data"]
    assert by_type["payment.succeeded"]["data"]["object"] == {
        "object": "payment",
        "community_id": community_id,
        **payment,
    }
    shown_plan = ok(env.client, "get", f"/v1/plans/{sub['plan_id']}", key)
    assert by_type["plan.created"]["data"]["object"] == {
        "object": "plan",
        "community_id": community_id,
        **shown_plan,
    }
    activated = by_type["subscription.activated"]
    times = [
        activated["created_at"],
        activated["data"]["object"]["created_at"],
        activated["data"]["object"]["current_period"]["start"],
    ]
    assert all(t.endswith("Z") and "+00:00" not in t for t in times), times


def test_a_delivery_that_succeeds_ends_a_run_of_failures(env: Env, receiver: Receiver) -> None:
    """Disabled only after 3 days of nothing but failures: a success in between starts the
    count again (it counted from the first failure of the outage and disabled the endpoint
    right after a success)."""
    _, key = community(env.client, PLATFORM_KEY)
    endpoint = register(env, key, receiver.url, ["plan.created"])
    receiver.answer_status = 500
    ok(env.client, "post", "/v1/plans", key, {"name": "A", "prices": {"month": 1000}})
    env.clock.advance(timedelta(seconds=1))
    ok(env.client, "post", "/v1/plans", key, {"name": "B", "prices": {"month": 1000}})
    publish_now(env.container)  # A fails
    env.clock.advance(timedelta(days=2))
    publish_now(env.container)  # A fails again
    env.clock.advance(timedelta(days=1, hours=2))
    receiver.next_statuses = [200]  # A is taken, then B is refused
    publish_now(env.container)

    assert [e["data"]["object"]["name"] for e in receiver.events()][-2:] == ["A", "B"]
    current = ok(env.client, "get", f"/v1/webhook-endpoints/{endpoint['id']}", key)
    assert current["status"] == "enabled"
    env.clock.advance(timedelta(days=2))
    publish_now(env.container)
    assert ok(env.client, "get", f"/v1/webhook-endpoints/{endpoint['id']}", key)["status"] == (
        "enabled"
    )
    env.clock.advance(timedelta(days=1, hours=2))  # 3 days of failures since B's first
    publish_now(env.container)
    assert ok(env.client, "get", f"/v1/webhook-endpoints/{endpoint['id']}", key)["status"] == (
        "disabled"
    )


def test_what_happens_while_disabled_by_failures_goes_out_when_enabled_again(
    env: Env, receiver: Receiver
) -> None:
    """events.md: enabling it again sends what it missed, in order: the events of changes
    made while it was disabled too. Disabled by its owner, it queues nothing."""
    _, key = community(env.client, PLATFORM_KEY)
    endpoint = register(env, key, receiver.url, ["plan.created", "plan.updated"])
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    receiver.answer_status = 500
    first = ok(env.client, "post", "/v1/plans", key, {"name": "A", "prices": {"month": 1000}})
    publish_now(env.container)
    for _ in range(4):
        env.clock.advance(timedelta(days=1))
        publish_now(env.container)
    assert ok(env.client, "get", path, key)["status"] == "disabled"
    tried = len(receiver.received)
    ok(env.client, "patch", f"/v1/plans/{first['id']}", key, {"name": "A2"})
    env.clock.advance(timedelta(seconds=1))  # in time order (one subject's are in any case)
    ok(env.client, "post", "/v1/plans", key, {"name": "B", "prices": {"month": 1000}})
    publish_now(env.container)
    assert len(receiver.received) == tried  # nothing is sent while disabled

    receiver.answer_status = 200
    ok(env.client, "patch", path, key, {"status": "enabled"})
    publish_now(env.container)
    names = [(e["type"], e["data"]["object"]["name"]) for e in receiver.events()[tried:]]
    assert names == [("plan.created", "A"), ("plan.updated", "A2"), ("plan.created", "B")]

    ok(env.client, "patch", path, key, {"status": "disabled"})  # by its owner
    ok(env.client, "post", "/v1/plans", key, {"name": "C", "prices": {"month": 1000}})
    publish_now(env.container)
    ok(env.client, "patch", path, key, {"status": "enabled"})
    publish_now(env.container)
    assert [e["data"]["object"]["name"] for e in receiver.events()][-1] == "B"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "https://169.254.169.254/latest/meta-data",  # metadata
        "https://10.1.2.3/hook",  # private
        "https://[::1]/hook",  # loopback
        "https://user:pw@example.com/hook",
        "http://127.0.0.2:8000/hook",  # only 127.0.0.1 locally
        "https://" + "a" * 64 + ".example.com/hook",  # a DNS label over 63 characters
        "https://a..example.com/hook",  # an empty label
        "https://.example.com/hook",
    ],
)
def test_the_ssrf_guard_refuses_unsafe_urls_at_registration(env: Env, url: str) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    status, answer = call(
        env.client, "post", "/v1/webhook-endpoints", key, {"url": url, "enabled_events": ["*"]}
    )
    assert status == 400, answer
    assert answer["error"]["details"][0]["field"] == "url"


def test_unknown_event_types_are_refused(env: Env) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    status, answer = call(
        env.client,
        "post",
        "/v1/webhook-endpoints",
        key,
        {"url": "http://127.0.0.1:9/x", "enabled_events": ["subscription.exploded"]},
    )
    assert status == 400 and answer["error"]["details"][0]["field"] == "enabled_events[0]"


def test_the_endpoint_list_pages_oldest_first_and_keeps_to_its_community(env: Env) -> None:
    """API.md, Lists: `limit` bounds a page and `starting_after` goes on from a cursor (the
    list answered every endpoint, whatever the limit, and ignored the cursor)."""
    _, key = community(env.client, PLATFORM_KEY)
    made = []
    for n in range(3):
        made.append(register(env, key, f"http://127.0.0.1:9/{n}")["id"])
        env.clock.advance(timedelta(seconds=1))
    first = ok(env.client, "get", "/v1/webhook-endpoints?limit=2", key)
    assert [e["id"] for e in first["data"]] == made[:2] and first["has_more"] is True
    rest = ok(
        env.client,
        "get",
        f"/v1/webhook-endpoints?limit=2&starting_after={first['next_cursor']}",
        key,
    )
    assert [e["id"] for e in rest["data"]] == made[2:]
    assert (rest["has_more"], rest["next_cursor"]) == (False, None)

    _, other_key = community(env.client, PLATFORM_KEY)
    foreign = call(
        env.client, "get", f"/v1/webhook-endpoints?starting_after={first['next_cursor']}", other_key
    )
    assert foreign[0] == 400 and foreign[1]["error"]["details"][0]["field"] == "starting_after"
    assert call(env.client, "get", "/v1/webhook-endpoints?limit=0", key)[0] == 400


def test_every_event_goes_on_the_stage_bus_and_the_stream_handler_publishes(
    bus_queue: str, bus_env: Env
) -> None:
    env = bus_env
    _, key = community(env.client, PLATFORM_KEY)
    free_family(env, key, "Eve")
    store = env.container.platform_events
    records = store.undelivered()
    assert records
    client = moto_client("dynamodb", region_name="us-east-1")
    stream_records = []
    for record in records:
        item = client.get_item(
            TableName=env.settings.table_name,
            Key={"pk": {"S": record.pk}, "sk": {"S": record.sk}},
        )["Item"]
        stream_records.append({"eventName": "INSERT", "dynamodb": {"NewImage": item}})
    stream_records.append({"eventName": "MODIFY", "dynamodb": {"NewImage": item}})
    published = handle_stream(stream_records, env.container)
    assert store.undelivered() == []

    sqs = moto_client("sqs", region_name="us-east-1")
    on_bus: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=bus_queue, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        on_bus += [json.loads(m["Body"]) for m in batch]
        for message in batch:
            sqs.delete_message(QueueUrl=bus_queue, ReceiptHandle=message["ReceiptHandle"])
    assert len(on_bus) == published
    assert {m["source"] for m in on_bus} == {"membership-billing"}
    assert {m["detail-type"] for m in on_bus} >= {"subscription.activated", "access.granted"}
    assert all(m["detail-type"] == m["detail"]["type"] for m in on_bus)


def test_free_access_granted_and_taken_tells_the_platform(env: Env, receiver: Receiver) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    register(env, key, receiver.url, ["access.granted", "access.revoked"])
    vip = ok(
        env.client,
        "post",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": "Vip", "email": "vip@example.com", "free_access": True},
    )
    plain = ok(
        env.client,
        "post",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": "Pat", "email": "pat@example.com"},
    )
    publish_now(env.container)
    ok(env.client, "patch", f"/v1/profiles/{plain['id']}", key, {"free_access": True})
    ok(env.client, "patch", f"/v1/profiles/{vip['id']}", key, {"free_access": False})
    ok(env.client, "patch", f"/v1/profiles/{plain['id']}", key, {"name": "Pat B."})
    publish_now(env.container)

    received = receiver.events()
    assert [(e["type"], e["subject_id"]) for e in received] == [
        ("access.granted", vip["id"]),
        ("access.granted", plain["id"]),
        ("access.revoked", vip["id"]),
    ]
    assert received[0]["data"]["object"]["reason"] == "free_access"
    rebuilt = rebuild_access(received)
    for profile in (vip, plain):
        assert rebuilt[profile["id"]] == ok(
            env.client, "get", f"/v1/profiles/{profile['id']}/access", key
        )


class FlakyBus:
    """EventBridge refusing the first put (a hand-written fake of the bus port)."""

    def __init__(self) -> None:
        self.failures_left = 1
        self.put_ids: list[str] = []

    def put(self, events: Sequence[PlatformEvent]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise Unavailable("EventBridge is down")
        self.put_ids += [event.id for event in events]


def test_a_failed_publication_is_published_again_with_the_same_access_events(
    env: Env, receiver: Receiver
) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    register(env, key, receiver.url, ["access.granted", "access.revoked"])
    profile = ok(
        env.client,
        "post",
        "/v1/profiles",
        key,
        {"kind": "customer", "name": "Flo", "email": "flo@example.com", "free_access": True},
    )
    box = env.container
    bus = FlakyBus()
    publisher = EventPublisher(
        box.platform_events,
        ProfileAccess(box.profiles, box.subscriptions, box.clock),
        bus,
        post,
        box.check_webhook_url,
        MailNotifier(box.mailer, SENDER),
        env.clock,
    )
    assert publisher.publish_pending() == 0  # the bus refused: logged, left for the next pass
    assert receiver.events() == []
    assert publisher.publish_pending() == 1  # the access event decided the first time
    publisher.drain_due()
    [event] = receiver.events()
    assert (event["type"], event["subject_id"]) == ("access.granted", profile["id"])
    assert bus.put_ids == [event["id"]]
    assert publisher.publish_pending() == 0


def test_publishing_now_publishes_every_pending_record_not_just_one_pass(env: Env) -> None:
    """The test clock answers an advance after `publish_now`: every outbox record is published
    then, however many passes of the publisher that takes (here passes of 2 records)."""
    _, key = community(env.client, PLATFORM_KEY)
    for number in range(5):
        ok(env.client, "post", "/v1/plans", key, {"name": f"P{number}", "prices": {"month": 100}})

    publish_now(env.container, batch=2)

    created = ok(env.client, "get", "/v1/events?type=plan.created&limit=100", key)["data"]
    assert sorted(e["data"]["object"]["name"] for e in created) == [f"P{n}" for n in range(5)]


def publisher_for(
    env: Env,
    listeners: Sequence[Any] = (),
    send: Callable[..., Answer] = post,
    monotonic: Callable[[], float] = time.monotonic,
) -> EventPublisher:
    box = env.container
    return EventPublisher(
        box.platform_events,
        ProfileAccess(box.profiles, box.subscriptions, box.clock),
        None,
        send,
        box.check_webhook_url,
        MailNotifier(box.mailer, SENDER),
        env.clock,
        listeners=listeners,
        monotonic=monotonic,
    )


def test_a_drain_pass_over_slow_receivers_ends_within_its_budget(
    env: Env, receiver: Receiver
) -> None:
    """The functions that drain (the stream publisher, `event_deliveries`) have 300 s. Two
    endpoints whose receiver takes 150 s a delivery (inside the 10 s cut-off's scale, sped up
    here): the pass starts no delivery past DRAIN_BUDGET_SECONDS from its start, so the second
    endpoint waits, still due, for the next pass (the budget was one per endpoint, and the
    pass started the second endpoint at 300 s: the Lambda was killed mid-delivery)."""
    _, key = community(env.client, PLATFORM_KEY)
    for _ in range(2):
        register(env, key, receiver.url, ["plan.created"])
    for name in ("Gold", "Silver"):
        ok(env.client, "post", "/v1/plans", key, {"name": name, "prices": {"month": 100}})
    elapsed = [0.0]
    sent_at: list[float] = []

    def slow_post(url: str, body: bytes, headers: Any) -> Answer:
        sent_at.append(elapsed[0])
        elapsed[0] += 150.0
        return post(url, body, headers)

    drainer = publisher_for(env, send=slow_post, monotonic=lambda: elapsed[0])
    assert drainer.publish_pending() == 2

    first = drainer.drain_due()

    assert first.delivered == 2
    assert all(at <= DRAIN_BUDGET_SECONDS for at in sent_at), sent_at
    assert drainer.drain_due().delivered == 2  # the next pass: the other endpoint
    assert len(receiver.events()) == 4


def test_a_pass_publishes_its_records_together_in_a_few_requests(
    env: Env, receiver: Receiver
) -> None:
    """40 outbox records in one pass: claimed in one transaction, their events written 25 at
    a time, the community's endpoints read once, queued together, marked in one transaction
    (one by one that was six requests a record)."""
    _, key = community(env.client, PLATFORM_KEY)
    register(env, key, receiver.url, ["plan.created"])
    names = [f"P{number:02d}" for number in range(40)]
    for name in names:
        ok(env.client, "post", "/v1/plans", key, {"name": name, "prices": {"month": 100}})
    publisher = publisher_for(env)
    requests = DynamoRequests(env.container.dynamodb)

    assert publisher.publish_pending() == 40

    assert requests.count <= 15, requests.count
    publisher.drain_due()
    delivered = [event["data"]["object"]["name"] for event in receiver.events()]
    assert sorted(delivered) == names  # (one instant: in event-id order, as one by one)
    assert publisher.publish_pending() == 0


def test_a_record_that_fails_in_a_pass_holds_back_only_its_own_subjects_records(
    env: Env,
) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    plans = {
        name: ok(env.client, "post", "/v1/plans", key, {"name": name, "prices": {"month": 100}})
        for name in ("Gold", "Silver", "Bronze")
    }
    ok(env.client, "patch", f"/v1/plans/{plans['Silver']['id']}", key, {"name": "Silver 2"})
    failing = {"on": True}

    def mailer_down_for_silver(events: Sequence[PlatformEvent]) -> None:
        if failing["on"] and any(e.subject_id == plans["Silver"]["id"] for e in events):
            raise Unavailable("the mailer is down")

    publisher = publisher_for(env, listeners=[mailer_down_for_silver])

    store = env.container.platform_events

    assert publisher.publish_pending() == 2  # Gold and Bronze; Silver's two records wait
    waiting = store.undelivered()
    assert [record.events[0].type for record in waiting] == ["plan.created", "plan.updated"]
    assert {record.events[0].subject_id for record in waiting} == {plans["Silver"]["id"]}

    failing["on"] = False
    assert publisher.publish_pending() == 2  # Silver created, then updated
    assert store.undelivered() == []


def test_a_test_clock_jump_hands_no_claimed_record_to_a_second_publisher(env: Env) -> None:
    """The local publisher loop holds a record (claimed, not yet marked) when an advance moves
    the test clock 31 days and publishes: claims are wall time, so the advance's publisher
    leaves the record to its holder (measured in test-clock time the claim had expired, and
    the record was published twice)."""
    _, key = community(env.client, PLATFORM_KEY)
    ok(env.client, "post", "/v1/plans", key, {"name": "Gold", "prices": {"month": 100}})
    held = Held()
    loop = publisher_for(env, listeners=[lambda _events: held.hold()])
    published: list[int] = []
    holder = threading.Thread(target=lambda: published.append(loop.publish_pending()))
    holder.start()
    try:
        assert held.entered.wait(10)
        env.clock.advance(timedelta(days=31))
        assert publisher_for(env).publish_pending() == 0
    finally:
        held.release.set()
        holder.join(10)
    assert published == [1]


def test_a_test_clock_jump_hands_no_leased_endpoint_to_a_second_drainer(
    env: Env, receiver: Receiver
) -> None:
    _, key = community(env.client, PLATFORM_KEY)
    register(env, key, receiver.url, ["plan.created"])
    ok(env.client, "post", "/v1/plans", key, {"name": "Gold", "prices": {"month": 100}})
    held = Held()

    def slow_post(url: str, body: bytes, headers: Any) -> Answer:
        held.hold()
        return post(url, body, headers)

    assert publisher_for(env).publish_pending() == 1
    drainer = publisher_for(env, send=slow_post)
    holder = threading.Thread(target=drainer.drain_due)
    holder.start()
    try:
        assert held.entered.wait(10)
        env.clock.advance(timedelta(days=31))
        assert publisher_for(env).drain_due().delivered == 0
    finally:
        held.release.set()
        holder.join(10)
    assert len(receiver.events()) == 1
