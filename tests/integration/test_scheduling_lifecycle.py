"""The scheduler with the real lifecycle actions (services/scheduled.py), moto and localstripe.

Subscriptions are made and activated through the HTTP API; Stripe is localstripe behind a
pass-through proxy (`stripe_cutoff`) that can lose an answer after Stripe did the work.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.jobs import sweeps, worker
from chalicelib.jobs.local_runner import JOBS, drain_work_queue
from chalicelib.jobs.messages import DueMessage
from tests.integration.conftest import PLATFORM_KEY, Env
from tests.support.atomic_requests import AtomicRequests
from tests.support.cutoff_app import CutoffApp
from tests.support.localstripe import localstripe_url, stripe_for
from tests.support.stripe_cutoff import stripe_cutoff
from tests.support.webhook_flow import call, community

__all__ = ["localstripe_url"]

GOOD_CARD = "4242424242424242"
DECLINING_CARD = "4000000000000341"


class Life(CutoffApp):
    def active_subscription(self, plan_id: str, name: str = "Ada") -> dict[str, Any]:
        owner = self.ok(
            "post",
            "/v1/profiles",
            {"kind": "customer", "name": name, "email": f"{name.lower()}@example.com"},
        )
        method = self.card(owner["id"], GOOD_CARD)
        sub = self.ok(
            "post",
            "/v1/subscriptions",
            {
                "plan_id": plan_id,
                "owner_id": owner["id"],
                "member_ids": [owner["id"]],
                "billing_cycle": "month",
                "payment_method_id": method,
            },
        )
        active: dict[str, Any] = self.ok("post", f"/v1/subscriptions/{sub['id']}/activate")
        assert active["status"] == "active"
        return active

    def payments(self, sub_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self.ok("get", f"/v1/payments?subscription_id={sub_id}&limit=100{cursor}")
            found += page["data"]
            if not page["has_more"]:
                return found
            cursor = f"&starting_after={page['next_cursor']}"

    def stripe_intents(self, sub_id: str) -> list[dict[str, Any]]:
        """Every PaymentIntent localstripe holds for this subscription (by our metadata)."""
        client = stripe_for(self.cutoff.target)
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = client.v1.payment_intents.list(params=params)
            for intent in page.data:
                data = intent.to_dict()
                if (data.get("metadata") or {}).get("subscription_id") == sub_id:
                    found.append(data)
            if not page.has_more:
                return found
            params["starting_after"] = page.data[-1].id

    def assert_ledger_equals_stripe(self, sub_id: str) -> None:
        """Every PaymentIntent is one of our payments, in the same state, and vice versa."""
        ours = {p["id"]: p for p in self.payments(sub_id) if p["total"] > 0}
        theirs = {i["metadata"]["payment_id"]: i for i in self.stripe_intents(sub_id)}
        assert set(ours) == set(theirs)
        for payment_id, intent in theirs.items():
            payment = ours[payment_id]
            assert intent["amount"] == payment["total"]
            paid = intent["status"] == "succeeded"
            assert (payment["status"] == "succeeded") == paid, (payment, intent["status"])
            if paid:
                assert payment["stripe"]["payment_intent_id"] == intent["id"]
        periods = Counter(
            (p["kind"], (p["period"] or {}).get("start"))
            for p in ours.values()
            if p["status"] == "succeeded"
        )
        assert max(periods.values()) == 1, periods  # one successful charge per period and kind

    def advance(self, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = call(self.env.client, "post", "/v1/test-clock/advance", PLATFORM_KEY, body)
        assert status == 200, answer
        return dict(answer)


@pytest.fixture
def life(env: Env, localstripe_url: str) -> Iterator[Life]:
    with stripe_cutoff(localstripe_url) as cutoff:
        settings = replace(env.settings, stripe_api_base=cutoff.url, test_clock_enabled=True)
        box = bootstrap.Container(settings, clock=env.clock)
        bootstrap.override_container(box)
        state = Life(replace(env, container=box, settings=settings), box, cutoff)
        _, state.key = community(env.client, PLATFORM_KEY)
        yield state
        bootstrap.override_container(env.container)


def monthly_plan(life: Life, **extra: Any) -> str:
    body = {"name": "Gold", "prices": {"month": 2500}, **extra}
    return str(life.ok("post", "/v1/plans", body)["id"])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.clock_start("2026-01-31T10:00:00Z")  # about these dates: whatever START is
def test_month_end_anchor_renews_on_the_right_days_over_14_months(life: Life) -> None:
    sub = life.active_subscription(monthly_plan(life))
    assert sub["current_period"] == {"start": "2026-01-31T10:00:00Z", "end": "2026-02-28T10:00:00Z"}

    answer = life.advance({"to": "2027-03-31T12:00:00Z"})

    assert answer["processed"] == {
        "renewed": 14,
        "retried": 0,
        "cancelled": 0,
        "expired": 0,
        "renewals_failed": 0,
    }
    renewals = sorted(
        (p for p in life.payments(sub["id"]) if p["kind"] == "renewal"),
        key=lambda p: p["period"]["start"],
    )
    expected_days = [
        "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31", "2026-06-30", "2026-07-31",
        "2026-08-31", "2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31", "2027-01-31",
        "2027-02-28", "2027-03-31",
    ]  # fmt: skip
    assert [p["period"]["start"][:10] for p in renewals] == expected_days
    for payment in renewals:
        assert payment["status"] == "succeeded"
        assert payment["total"] == 2500
        # charged at the moment its period began: on the right day, not a sweep later
        assert payment["created_at"] == payment["period"]["start"]
    current = life.ok("get", f"/v1/subscriptions/{sub['id']}")
    assert current["status"] == "active"
    assert current["current_period"] == {
        "start": "2027-03-31T10:00:00Z",
        "end": "2027-04-30T10:00:00Z",
    }
    life.assert_ledger_equals_stripe(sub["id"])
    assert len(life.stripe_intents(sub["id"])) == 15  # activation + 14 renewals


def test_sqs_redelivery_of_a_renewal_charges_nothing_new(life: Life) -> None:
    sub = life.active_subscription(monthly_plan(life))
    life.env.clock.advance_to(at(sub["current_period"]["end"]) + timedelta(minutes=1))
    queued: list[DueMessage] = []
    sweeps.sweep(life.box, ("renewal",), sink=queued.extend)
    (message,) = queued
    assert message.subject_id == sub["id"]

    assert worker.process_message(life.box, message) == "renewed"
    assert worker.process_message(life.box, message) == worker.NOT_DUE
    # Even past the worker's re-check, the action itself will not charge the period again.
    now = life.env.clock.now()
    assert life.box.scheduled.renew(message.community_id, sub["id"], now) == "not_due"

    assert len(life.stripe_intents(sub["id"])) == 2
    assert [p["kind"] for p in life.payments(sub["id"])].count("renewal") == 1
    life.assert_ledger_equals_stripe(sub["id"])


def test_a_renewal_message_carries_the_subscription_and_a_stale_copy_charges_nothing(
    life: Life,
) -> None:
    sub = life.active_subscription(monthly_plan(life))
    life.env.clock.advance_to(at(sub["current_period"]["end"]) + timedelta(minutes=1))
    queued: list[DueMessage] = []
    sweeps.sweep(life.box, ("renewal",), sink=queued.extend)
    (message,) = queued
    assert message.snapshot is not None and message.snapshot["version"] == sub["version"]
    assert DueMessage.from_json(message.to_json()) == message

    # The owner cancels after the sweep: the message's copy is now stale.
    life.ok("post", f"/v1/subscriptions/{sub['id']}/cancel", {"at": "now"})
    assert worker.process_message(life.box, message) == "not_due"
    assert len(life.stripe_intents(sub["id"])) == 1  # the activation only
    assert life.ok("get", f"/v1/subscriptions/{sub['id']}")["status"] == "cancelled"
    life.assert_ledger_equals_stripe(sub["id"])


def test_a_stale_message_for_another_group_changes_nothing(life: Life) -> None:
    sub = life.active_subscription(monthly_plan(life))
    life.ok("post", f"/v1/subscriptions/{sub['id']}/cancel", {"at": "period_end"})
    life.env.clock.advance_to(at(sub["current_period"]["end"]) + timedelta(minutes=1))
    queued: list[DueMessage] = []
    sweeps.sweep(life.box, ("expiration",), sink=queued.extend)
    (message,) = queued
    stale_renewal = replace(message, group="renewal")  # sent before the cancellation

    assert worker.process_message(life.box, stale_renewal) == "not_due"
    assert len(life.stripe_intents(sub["id"])) == 1
    assert worker.process_message(life.box, message) == "expired"
    assert life.ok("get", f"/v1/subscriptions/{sub['id']}")["status"] == "cancelled"


def test_two_sweeps_and_two_workers_at_once_renew_each_subscription_once(life: Life) -> None:
    AtomicRequests(life.box.dynamodb, life.box.sqs)
    plan_id = monthly_plan(life)
    subs = [life.active_subscription(plan_id, name=f"Member{i}") for i in range(4)]
    life.env.clock.advance(timedelta(days=32))
    barrier = threading.Barrier(2)

    def sweep_then_work() -> None:
        barrier.wait()
        sweeps.sweep(life.box, ("renewal",))
        assert JOBS.worker is not None
        drain_work_queue(life.box, JOBS.worker)

    threads = [threading.Thread(target=sweep_then_work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for sub in subs:
        assert [p["kind"] for p in life.payments(sub["id"])].count("renewal") == 1
        assert len(life.stripe_intents(sub["id"])) == 2
        life.assert_ledger_equals_stripe(sub["id"])
        assert life.ok("get", f"/v1/subscriptions/{sub['id']}")["status"] == "active"


def test_worker_killed_after_the_stripe_charge_leaves_ledger_equal_to_stripe(life: Life) -> None:
    sub = life.active_subscription(monthly_plan(life))
    period_end = at(sub["current_period"]["end"])
    life.cutoff.cut_next("POST", "/v1/payment_intents")  # Stripe charges; the answer is lost

    first = life.advance({"to": (period_end + timedelta(minutes=1)).isoformat()})

    assert life.cutoff.cut, "the renewal never reached Stripe"
    assert first["processed"]["renewed"] == 0
    [renewal] = [p for p in life.payments(sub["id"]) if p["kind"] == "renewal"]
    assert renewal["status"] == "pending"
    [charged] = [
        i for i in life.stripe_intents(sub["id"]) if i["metadata"]["payment_id"] == renewal["id"]
    ]
    assert charged["status"] == "succeeded"  # Stripe has the money; our ledger does not yet

    life.advance({"seconds": 600})  # the recovery pass is due

    [renewal] = [p for p in life.payments(sub["id"]) if p["kind"] == "renewal"]
    assert renewal["status"] == "succeeded"
    assert renewal["stripe"]["payment_intent_id"] == charged["id"]
    assert len(life.stripe_intents(sub["id"])) == 2  # recovery never charged again
    life.assert_ledger_equals_stripe(sub["id"])
    current = life.ok("get", f"/v1/subscriptions/{sub['id']}")
    assert current["status"] == "active"
    assert current["current_period"]["start"] == sub["current_period"]["end"]


def test_declining_card_fails_retries_then_cancels_at_grace_end(life: Life) -> None:
    plan_id = monthly_plan(life, failed_payment_grace_days=7, retry_schedule_days=[1, 3])
    sub = life.active_subscription(plan_id)
    declining = life.card(sub["owner_id"], DECLINING_CARD)
    life.ok("patch", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": declining})
    period_end = at(sub["current_period"]["end"])

    answer = life.advance({"to": (period_end + timedelta(days=8)).isoformat()})

    assert answer["processed"] == {
        "renewed": 0,
        "retried": 2,
        "cancelled": 1,
        "expired": 0,
        "renewals_failed": 1,
    }
    current = life.ok("get", f"/v1/subscriptions/{sub['id']}")
    assert current["status"] == "cancelled"
    assert current["cancellation_reason"] == "payment_failed"
    assert current["cancelled_at"] == (period_end + timedelta(days=7)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    failed = [p for p in life.payments(sub["id"]) if p["status"] == "failed"]
    assert sorted(p["kind"] for p in failed) == ["renewal", "retry", "retry"]
    assert {p["failure"]["code"] for p in failed} == {"card_declined"}
    life.assert_ledger_equals_stripe(sub["id"])


def test_expiring_subscription_ends_at_period_end(life: Life) -> None:
    sub = life.active_subscription(monthly_plan(life))
    life.ok("post", f"/v1/subscriptions/{sub['id']}/cancel", {"at": "period_end"})

    answer = life.advance({"days": 45})

    assert answer["processed"] == {
        "renewed": 0,
        "retried": 0,
        "cancelled": 0,
        "expired": 1,
        "renewals_failed": 0,
    }
    current = life.ok("get", f"/v1/subscriptions/{sub['id']}")
    assert current["status"] == "cancelled"
    assert current["cancellation_reason"] == "expired"
    assert current["cancelled_at"] == sub["current_period"]["end"]
    assert len(life.stripe_intents(sub["id"])) == 1
