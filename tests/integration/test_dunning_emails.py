"""The dunning emails (services/dunning.py) through SES in moto, driven by the real sweeps, the
SQS worker, the webhook endpoint and the test clock; Stripe is localstripe behind the proxy of
tests/support/stripe_cutoff.py (which also plays the issuer answers localstripe cannot give,
e.g. a `stolen_card` decline). Every email is asserted by its content."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from chalicelib import bootstrap
from chalicelib.jobs import sweeps, worker
from chalicelib.jobs.event_publisher import handle_stream, publish_now
from chalicelib.jobs.messages import DueMessage
from tests.integration.conftest import PLATFORM_KEY, Env
from tests.support import stripe_events as se
from tests.support.cutoff_app import CutoffApp
from tests.support.localstripe import localstripe_url, new_card, stripe_for
from tests.support.moto_clients import moto_client
from tests.support.stripe_cutoff import stripe_cutoff
from tests.support.webhook_flow import SECRET, call, community, stripe_event_for

__all__ = ["localstripe_url"]

GOOD_CARD = "4242424242424242"
DECLINING_CARD = "4000000000000341"  # attaches; every charge is declined (card_declined)
SENDER = "billing@example.com"  # the settings' default sender


@dataclass(frozen=True)
class Mail:
    to: list[str]
    subject: str
    body: str


class Dunning(CutoffApp):
    def family_subscription(self, renewal_card: str, **plan: Any) -> dict[str, Any]:
        """Ada (owner, member) and her dependent Kid on a 25.00 USD monthly plan, activated
        with a good card, then set to pay renewals with `renewal_card`."""
        plan_id = self.ok("post", "/v1/plans", {"name": "Gold", "prices": {"month": 2500}, **plan})[
            "id"
        ]
        owner = self.ok(
            "post", "/v1/profiles", {"kind": "customer", "name": "Ada", "email": "ada@example.com"}
        )
        kid = self.ok(
            "post",
            "/v1/profiles",
            {"kind": "dependent", "name": "Kid", "account_holder_id": owner["id"]},
        )
        good = self.card(owner["id"], GOOD_CARD)
        sub = self.ok(
            "post",
            "/v1/subscriptions",
            {
                "plan_id": plan_id,
                "owner_id": owner["id"],
                "member_ids": [owner["id"], kid["id"]],
                "billing_cycle": "month",
                "payment_method_id": good,
            },
        )
        self.ok("post", f"/v1/subscriptions/{sub['id']}/activate")
        if renewal_card != GOOD_CARD:
            card = self.card(owner["id"], renewal_card)
            self.ok("patch", f"/v1/subscriptions/{sub['id']}", {"payment_method_id": card})
        answer: dict[str, Any] = self.ok("get", f"/v1/subscriptions/{sub['id']}")
        return answer

    def subscription(self, sub_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.ok("get", f"/v1/subscriptions/{sub_id}")
        return answer

    def advance_to(self, moment: datetime) -> dict[str, Any]:
        status, answer = call(
            self.env.client,
            "post",
            "/v1/test-clock/advance",
            PLATFORM_KEY,
            {"to": moment.isoformat()},
        )
        assert status == 200, answer
        return dict(answer)

    def intents(self, sub_id: str) -> list[dict[str, Any]]:
        page = stripe_for(self.cutoff.target).v1.payment_intents.list(params={"limit": 100})
        return [
            i.to_dict()
            for i in page.data
            if (i.to_dict().get("metadata") or {}).get("subscription_id") == sub_id
        ]


def mails() -> list[Mail]:
    """Every email SES (moto) accepted, oldest first."""
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [Mail(m.destinations["ToAddresses"], m.subject, m.body) for m in sent]


def subjects() -> list[str]:
    return [m.subject for m in mails()]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def when(moment: datetime) -> str:
    return moment.strftime("%B %-d, %Y at %H:%M UTC")


@pytest.fixture
def dunning(env: Env, localstripe_url: str) -> Iterator[Dunning]:
    moto_client("ses", region_name="us-east-1").verify_email_identity(EmailAddress=SENDER)
    with stripe_cutoff(localstripe_url) as cutoff:
        settings = replace(
            env.settings,
            stripe_api_base=cutoff.url,
            test_clock_enabled=True,
            stripe_manual_confirmation=False,  # localstripe refuses it (config.py)
        )
        box = bootstrap.Container(settings, clock=env.clock)
        bootstrap.override_container(box)
        state = Dunning(replace(env, container=box, settings=settings), box, cutoff)
        _, state.key = community(env.client, PLATFORM_KEY)
        yield state
        bootstrap.override_container(env.container)


def run_group(d: Dunning, group: str) -> list[str]:
    """One sweep of `group` now and the worker on each message, twice (an SQS redelivery)."""
    queued: list[DueMessage] = []
    sweeps.sweep(d.box, (group,), sink=queued.extend)  # type: ignore[arg-type]
    return [worker.process_message(d.box, message) for message in queued * 2]


def outbox_stream_records(d: Dunning) -> list[dict[str, Any]]:
    """The unpublished outbox records as DynamoDB Streams would deliver them (INSERTs)."""
    client = moto_client("dynamodb", region_name="us-east-1")
    records = []
    for record in d.box.platform_events.undelivered():
        item = client.get_item(
            TableName=d.env.settings.table_name,
            Key={"pk": {"S": record.pk}, "sk": {"S": record.sk}},
        )["Item"]
        records.append({"eventName": "INSERT", "dynamodb": {"NewImage": item}})
    return records


def link_in(body: str) -> tuple[str, str]:
    """(url, token) of the pay-now link an email carries; it must carry one."""
    found = re.search(r"Pay now: (http://127\.0\.0\.1:8000/pay/([A-Za-z0-9_-]+))\n", body)
    assert found, body
    return found.group(1), found.group(2)


def link_text(body: str, expires_at: datetime) -> str:
    url, _ = link_in(body)
    return f"Pay now: {url}\n(This link works until {when(expires_at)}.)\n"


def page_state(d: Dunning, token: str) -> str:
    """What the public pay page shows for this token (its data-state)."""
    response = d.env.client.http.get(f"/pay/{token}")
    found = re.search(r'data-state="([a-z_]+)"', response.body.decode())
    return found.group(1) if found else f"HTTP {response.status_code}"


def test_a_declined_renewal_mails_each_failure_once_then_the_reminder_then_the_cancellation(
    dunning: Dunning,
) -> None:
    d = dunning
    sub = d.family_subscription(
        DECLINING_CARD, failed_payment_grace_days=7, retry_schedule_days=[1, 3]
    )
    period_end = at(sub["current_period"]["end"])
    publish_now(d.box)  # the activation's records: nothing to email
    assert mails() == []

    # The renewal fails; its message is processed twice (SQS redelivers it).
    d.env.clock.advance_to(period_end + timedelta(minutes=1))
    assert run_group(d, "renewal") == ["renewal_failed", "not_due"]
    # Streams delivers the record, then the same batch again; the local feed passes too.
    records = outbox_stream_records(d)
    assert records
    handle_stream(records, d.box)
    handle_stream(records, d.box)
    publish_now(d.box)

    [failed] = mails()
    failed_at = period_end + timedelta(minutes=1)
    grace_end = failed_at + timedelta(days=7)
    assert failed.to == ["ada@example.com"]
    assert failed.subject == "Payment failed for your Gold membership"
    assert failed.body == (
        "Hello Ada,\n\n"
        "we could not collect the payment for your Gold membership at Webhook Gym "
        f"(subscription {sub['id']}).\n\n"
        "Amount: 50.00 USD\n"
        "Card: Visa ending in 0341\n"
        "Reason: Your bank declined the payment without giving a reason.\n"
        f"Next attempt: We will try the card again on {when(failed_at + timedelta(days=1))}.\n"
        f"Unless it is paid, the membership will be cancelled on {when(grace_end)}.\n\n"
        f"{link_text(failed.body, grace_end)}"
    )
    assert page_state(d, link_in(failed.body)[1]) == "payable"

    # Retry 1 (day 1) and retry 2 (day 3) fail: one email each.
    d.advance_to(failed_at + timedelta(days=1, minutes=1))
    d.advance_to(failed_at + timedelta(days=3, minutes=1))
    assert subjects() == ["Payment failed for your Gold membership"] * 3
    last_failure = mails()[2].body
    assert "Next attempt: No more automatic retries are scheduled." in last_failure
    assert f"cancelled on {when(grace_end)}" in last_failure

    # The last reminder: not a second before grace end - 48 h, then once.
    reminder_due = grace_end - timedelta(hours=48)
    d.advance_to(reminder_due - timedelta(seconds=1))
    assert len(mails()) == 3
    d.advance_to(reminder_due)
    assert len(mails()) == 4
    reminder = mails()[3]
    assert reminder.to == ["ada@example.com"]
    assert reminder.subject == (
        f"Last reminder: your Gold membership ends on {grace_end.strftime('%B %-d, %Y')}"
    )
    assert reminder.body == (
        "Hello Ada,\n\n"
        "the payment of 50.00 USD for your Gold membership at Webhook Gym "
        f"(subscription {sub['id']}) is still outstanding. Unless it is paid, the membership "
        f"will be cancelled on {when(grace_end)} and its members will lose access.\n\n"
        f"{link_text(reminder.body, grace_end)}"
    )
    # The newest email's link pays; issuing it retired the older emails' links.
    assert page_state(d, link_in(reminder.body)[1]) == "payable"
    assert page_state(d, link_in(failed.body)[1]) != "payable"
    assert run_group(d, "dunning_reminder") == []  # nothing due any more
    d.advance_to(grace_end - timedelta(minutes=1))
    assert len(mails()) == 4

    # Grace ends: cancelled, and said once.
    d.advance_to(grace_end + timedelta(minutes=1))
    assert d.subscription(sub["id"])["status"] == "cancelled"
    d.advance_to(grace_end + timedelta(days=40))  # nothing more, whatever runs later
    handle_stream(records, d.box)  # an old batch replayed
    cancelled = mails()[4]
    assert cancelled.subject == "Your Gold membership at Webhook Gym was cancelled"
    assert cancelled.body == (
        "Hello Ada,\n\n"
        f"your Gold membership at Webhook Gym (subscription {sub['id']}) was cancelled on "
        f"{when(grace_end)} because its payment could not be collected before the grace "
        "period ended. Its members no longer have access.\n\n"
        "To join again, please contact Webhook Gym.\n"
    )
    assert subjects() == [
        *["Payment failed for your Gold membership"] * 3,
        f"Last reminder: your Gold membership ends on {grace_end.strftime('%B %-d, %Y')}",
        "Your Gold membership at Webhook Gym was cancelled",
    ]
    # Only the owner is ever written to: the dependent member has no address.
    assert {address for mail in mails() for address in mail.to} == {"ada@example.com"}


def test_a_failure_reported_twice_by_webhook_is_mailed_once(dunning: Dunning) -> None:
    d = dunning
    sub = d.family_subscription(DECLINING_CARD, failed_payment_grace_days=7)
    period_end = at(sub["current_period"]["end"])
    publish_now(d.box)
    # Stripe declines the renewal but its answer is lost: our payment stays pending.
    d.cutoff.cut_next("POST", "/v1/payment_intents")
    d.env.clock.advance_to(period_end + timedelta(minutes=1))
    assert run_group(d, "renewal") == ["payment_pending", "not_due"]
    [renewal] = [
        p
        for p in d.ok("get", f"/v1/payments?subscription_id={sub['id']}")["data"]
        if p["kind"] == "renewal"
    ]
    assert renewal["status"] == "pending"
    publish_now(d.box)
    assert mails() == []

    event = stripe_event_for(d.cutoff.target, "payment_intent.payment_failed", renewal["id"])
    body = se.body_of(event)
    answers = []
    for _ in range(2):  # Stripe sends the event twice
        response = d.env.client.http.post(
            "/webhooks/stripe", body=body, headers=se.signed_headers(body, SECRET)
        )
        answers.append(json.loads(response.body)["result"])
        publish_now(d.box)
    assert answers == ["processed", "duplicate"]

    assert d.subscription(sub["id"])["status"] == "failed_payment"
    [failed] = mails()
    assert failed.subject == "Payment failed for your Gold membership"
    assert "Amount: 50.00 USD\nCard: Visa ending in 0341\n" in failed.body


def test_a_stolen_card_stops_the_retries_and_the_emails_say_so(dunning: Dunning) -> None:
    d = dunning
    sub = d.family_subscription(
        DECLINING_CARD, failed_payment_grace_days=7, retry_schedule_days=[1, 3]
    )
    period_end = at(sub["current_period"]["end"])
    # The issuer answers stolen_card (localstripe only says card_declined: the proxy adds it).
    d.cutoff.decline_next("POST", "/v1/payment_intents", {"decline_code": "stolen_card"})
    d.advance_to(period_end + timedelta(minutes=1))

    failed_sub = d.subscription(sub["id"])
    assert failed_sub["status"] == "failed_payment"
    assert failed_sub["next_retry_at"] is None
    failed_at = period_end  # the test clock runs the renewal at its due time
    grace_end = failed_at + timedelta(days=7)
    [renewal] = [
        p
        for p in d.ok("get", f"/v1/payments?subscription_id={sub['id']}")["data"]
        if p["kind"] == "renewal"
    ]
    assert renewal["failure"]["decline_code"] == "stolen_card"
    [failed] = mails()
    assert (
        "Reason: Your bank declined the payment and asked us not to try this card again. "
        "Please pay with another card.\n"
        "Next attempt: No more automatic retries: your bank asked us not to charge this card "
        "again.\n"
        f"Unless it is paid, the membership will be cancelled on {when(grace_end)}.\n"
    ) in failed.body
    assert "stolen" not in failed.body
    assert page_state(d, link_in(failed.body)[1]) == "payable"  # the link stays

    # Days 1 and 3 pass: no retry reaches Stripe; the subscription waits for its grace end.
    intents_before = len(d.intents(sub["id"]))
    d.advance_to(failed_at + timedelta(days=4))
    assert len(d.intents(sub["id"])) == intents_before
    assert d.subscription(sub["id"])["status"] == "failed_payment"
    d.advance_to(grace_end + timedelta(minutes=1))
    assert d.subscription(sub["id"])["status"] == "cancelled"
    assert len(d.intents(sub["id"])) == intents_before
    assert subjects() == [
        "Payment failed for your Gold membership",
        f"Last reminder: your Gold membership ends on {grace_end.strftime('%B %-d, %Y')}",
        "Your Gold membership at Webhook Gym was cancelled",
    ]
    assert page_state(d, link_in(mails()[1].body)[1]) != "payable"  # nothing to pay now


def test_a_successful_retry_mails_the_order_summary_and_no_reminder(dunning: Dunning) -> None:
    d = dunning
    sub = d.family_subscription(GOOD_CARD, failed_payment_grace_days=7, retry_schedule_days=[1])
    period_end = at(sub["current_period"]["end"])
    # The bank refuses the renewal once (insufficient funds); the retry goes through.
    d.cutoff.decline_next(
        "POST",
        "/v1/payment_intents",
        {"code": "card_declined", "decline_code": "insufficient_funds"},
        forward=False,
    )
    d.advance_to(period_end + timedelta(minutes=1))
    [failed] = mails()
    assert "Reason: The card has insufficient funds.\n" in failed.body
    assert "Card: Visa ending in 4242\n" in failed.body

    retried_at = period_end + timedelta(days=1, minutes=1)
    d.advance_to(retried_at)
    current = d.subscription(sub["id"])
    assert current["status"] == "active"
    [retry] = [
        p
        for p in d.ok("get", f"/v1/payments?subscription_id={sub['id']}")["data"]
        if p["kind"] == "retry"
    ]
    assert retry["status"] == "succeeded"
    received = mails()[1]
    assert received.to == ["ada@example.com"]
    assert received.subject == "Payment received: 50.00 USD for Gold"
    period = current["current_period"]
    assert received.body.startswith(
        "Hello Ada,\n\n"
        "thank you: we received your payment of 50.00 USD (Visa ending in 4242) for your Gold "
        "membership at Webhook Gym. The membership is active again. Its new billing period runs "
        f"from {when(at(period['start']))} to {when(at(period['end']))}.\n\n"
        f"Order summary (payment {retry['id']}):\n"
    )
    assert [line["description"] for line in retry["lines"]] == ["Gold (monthly), 2 members"]
    assert received.body.endswith(
        f"Order summary (payment {retry['id']}):\n"
        "  Gold (monthly), 2 members: 2 x 25.00 USD = 50.00 USD\n\n"
        "Total: 50.00 USD\n"
    )

    # The grace period ended with the payment: its reminder is never sent.
    d.advance_to(period_end + timedelta(days=6))
    assert subjects() == [
        "Payment failed for your Gold membership",
        "Payment received: 50.00 USD for Gold",
    ]


def pay_call(d: Dunning, token: str, action: str, body: Any = None) -> tuple[int, Any]:
    """One of the pay page's JSON calls, as its script makes them (no API key)."""
    response = d.env.client.http.post(
        f"/pay/{token}/{action}",
        headers={"Content-Type": "application/json"},
        body=json.dumps(body or {}),
    )
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    return response.status_code, json.loads(text) if text else None


def set_up_card(d: Dunning, token: str, number: str) -> str:
    """The page's Stripe.js part by hand: a SetupIntent from the page, confirmed with a card."""
    _, setup = pay_call(d, token, "setup-intent")
    client = stripe_for(d.cutoff.target)
    card_id = new_card(client, number)
    setup_id = setup["client_secret"].split("_secret_")[0]
    assert client.v1.setup_intents.confirm(setup_id, params={"payment_method": card_id}).status == (
        "succeeded"
    )
    return card_id


def test_a_card_declined_on_the_pay_page_sends_no_email_and_keeps_the_link(
    dunning: Dunning,
) -> None:
    """The owner is on the page and sees the decline there: no "payment failed" email, and
    above all no new link (a new one would expire the link the owner is paying with)."""
    d = dunning
    sub = d.family_subscription(
        DECLINING_CARD, failed_payment_grace_days=7, retry_schedule_days=[3]
    )
    d.advance_to(at(sub["current_period"]["end"]) + timedelta(minutes=1))
    [failed] = mails()
    _, token = link_in(failed.body)

    status, _ = pay_call(
        d, token, "pay", {"payment_method_id": set_up_card(d, token, DECLINING_CARD)}
    )
    assert status == 402
    publish_now(d.box)  # what the publisher loop (or the stream) does right after
    publish_now(d.box)
    assert subjects() == ["Payment failed for your Gold membership"]
    assert page_state(d, token) == "payable"

    status, paid = pay_call(
        d, token, "pay", {"payment_method_id": set_up_card(d, token, GOOD_CARD)}
    )
    assert (status, paid.get("status")) == (200, "paid"), paid
    publish_now(d.box)
    assert subjects() == [
        "Payment failed for your Gold membership",
        "Payment received: 50.00 USD for Gold",
    ]


def test_paying_through_the_emailed_link_mails_the_payment_received_once(
    dunning: Dunning,
) -> None:
    d = dunning
    sub = d.family_subscription(
        DECLINING_CARD, failed_payment_grace_days=7, retry_schedule_days=[3]
    )
    period_end = at(sub["current_period"]["end"])
    d.advance_to(period_end + timedelta(minutes=1))
    [failed] = mails()
    _, token = link_in(failed.body)

    # The owner opens the emailed link and pays with a new card (Stripe.js's part by hand).
    _, setup = pay_call(d, token, "setup-intent")
    client = stripe_for(d.cutoff.target)
    card_id = new_card(client, GOOD_CARD)
    setup_id = setup["client_secret"].split("_secret_")[0]
    assert client.v1.setup_intents.confirm(setup_id, params={"payment_method": card_id}).status == (
        "succeeded"
    )
    status, paid = pay_call(d, token, "pay", {"payment_method_id": card_id})
    assert (status, paid.get("status")) == (200, "paid"), paid
    publish_now(d.box)  # what the publisher loop (or the stream) does right after
    publish_now(d.box)

    assert d.subscription(sub["id"])["status"] == "active"
    [reactivation] = [
        p
        for p in d.ok("get", f"/v1/payments?subscription_id={sub['id']}")["data"]
        if p["kind"] == "reactivation"
    ]
    received = mails()[1]
    assert received.to == ["ada@example.com"]
    assert received.subject == "Payment received: 50.00 USD for Gold"
    assert "we received your payment of 50.00 USD (Visa ending in 4242)" in received.body
    assert f"Order summary (payment {reactivation['id']}):\n" in received.body
    assert received.body.endswith("\nTotal: 50.00 USD\n")
    assert page_state(d, token) == "paid"

    # Later sweeps send nothing more: no reminder for a grace period that ended with the payment.
    d.advance_to(period_end + timedelta(days=8))
    assert subjects() == [
        "Payment failed for your Gold membership",
        "Payment received: 50.00 USD for Gold",
    ]
