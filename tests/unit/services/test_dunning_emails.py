"""The dunning emails (services/dunning.py) on the in-memory world: what each says, to whom,
and once per event however often a record is published."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.adapters.email import Email
from chalicelib.domain.errors import Unavailable
from tests.support.dunning_world import DunningWorld, FlakyMailer
from tests.support.world import CID

GRACE_DAYS = 7


def failed_renewal(world: DunningWorld, card: str = "pm_decline", **plan: Any) -> str:
    """A monthly subscription of Ada (owner) and her dependent Kid whose renewal was declined;
    the outbox published."""
    owner = world.customer("Ada")
    kid = world.dependent("Kid", owner)
    terms = {"retry_days": (1, 3), "grace_days": GRACE_DAYS, **plan}
    sub_id = world.active(world.plan(2500, **terms), owner, owner, kid)
    world.card_checks.on_stripe[card] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": card})
    assert world.renew_at_period_end(sub_id) == "renewal_failed"
    world.publish()
    return sub_id


def test_payment_failed_email_says_amount_card_reason_next_retry_end_and_link() -> None:
    world = DunningWorld()
    sub_id = failed_renewal(world)
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.failed_at is not None

    [email] = world.mailer.sent
    assert email.to == "ada@example.org"
    assert email.subject == "Payment failed for your Gold membership"
    body = email.body
    assert "Hello Ada," in body
    assert "Harbour gym" in body
    assert "Amount: 50.00 USD" in body  # two members x 25.00
    assert "Card: Visa ending in 4242" in body
    assert "Reason: Your bank declined the payment without giving a reason." in body
    next_retry = sub.failed_at + timedelta(days=1)
    assert (
        f"We will try the card again on {next_retry.strftime('%B %-d, %Y at %H:%M')} UTC." in body
    )
    grace_end = sub.failed_at + timedelta(days=GRACE_DAYS)
    assert f"cancelled on {grace_end.strftime('%B %-d, %Y at %H:%M')} UTC" in body
    [(linked_sub, url)] = world.links.issued
    assert linked_sub == sub_id and f"Pay now: {url}\n" in body


def test_each_failure_is_emailed_once_however_often_its_record_is_published() -> None:
    world = DunningWorld()
    sub_id = failed_renewal(world)
    world.clock.advance(timedelta(days=1))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "retry_failed"
    )
    # The same failure processed twice: the second run finds nothing due (no new event).
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == "not_due"

    assert world.publish() == ["payment_failed"]
    assert world.republish_all() == []  # a replay / redelivered batch sends nothing
    assert world.republish_all() == []

    subjects = [m.subject for m in world.mailer.sent]
    assert subjects == ["Payment failed for your Gold membership"] * 2
    assert {m.to for m in world.mailer.sent} == {"ada@example.org"}  # never the dependent
    assert len(world.links.issued) == 2  # one link per email sent, none for the replays
    assert "We will try the card again" in world.mailer.sent[1].body  # day 3 retry


def test_a_hard_decline_email_says_no_more_retries_in_generic_words() -> None:
    world = DunningWorld()
    failed_renewal(world, card="pm_decline_stolen_card")

    [email] = world.mailer.sent
    assert "Reason: Your bank declined the payment and asked us not to try this card again." in (
        email.body
    )
    assert "No more automatic retries: your bank asked us not to charge this card again." in (
        email.body
    )
    assert "stolen" not in email.body
    assert "Pay now: https://pay.example/pay/tok_1" in email.body  # the link stays


def test_the_last_reminder_is_due_48_hours_before_grace_ends_and_sent_once() -> None:
    world = DunningWorld()
    sub_id = failed_renewal(world, retry_days=())
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.grace_ends_at is not None
    due = sub.grace_ends_at - timedelta(hours=48)
    assert world.ledger.due[(CID, sub_id)] == due

    assert world.dunning.send_last_reminder(CID, sub_id, due - timedelta(seconds=1)) == "not_due"
    assert world.dunning.send_last_reminder(CID, sub_id, due) == "reminder_sent"
    assert world.dunning.send_last_reminder(CID, sub_id, due) == "reminder_already_sent"
    assert (CID, sub_id) not in world.ledger.due

    reminder = world.mailer.sent[-1]
    assert reminder.to == "ada@example.org"
    assert reminder.subject == (
        f"Last reminder: your Gold membership ends on {sub.grace_ends_at.strftime('%B %-d, %Y')}"
    )
    assert "payment of 50.00 USD" in reminder.body
    assert "Pay now: https://pay.example/pay/tok_2" in reminder.body
    assert len(world.mailer.sent) == 2


def test_grace_end_cancels_and_the_cancellation_is_emailed_once() -> None:
    world = DunningWorld()
    sub_id = failed_renewal(world, retry_days=())
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.grace_ends_at is not None
    world.clock.advance_to(sub.grace_ends_at)
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "grace_cancelled"
    )
    assert world.publish() == ["cancelled"]
    assert world.republish_all() == []
    # The reminder that was never sent (grace has ended) is moot, not sent late.
    assert world.dunning.send_last_reminder(CID, sub_id, world.clock.now()) == "reminder_moot"

    cancelled = world.mailer.sent[-1]
    assert cancelled.subject == "Your Gold membership at Harbour gym was cancelled"
    assert "because its payment could not be collected" in cancelled.body
    assert [m.subject.split(" ")[0] for m in world.mailer.sent] == ["Payment", "Your"]


def test_a_successful_retry_sends_the_payment_received_order_summary() -> None:
    world = DunningWorld()
    sub_id = failed_renewal(world)
    owner_id = world.store.subscriptions[(CID, sub_id)].owner_id
    world.store.credit[(CID, owner_id, "usd")] = 700  # spent on the retry
    # The card works again (the fake gateway declines "pm_decline" only): the stored
    # subscription is given a working card, as the API cannot change a failed_payment one.
    sub = world.store.subscriptions[(CID, sub_id)]
    world.store.subscriptions[(CID, sub_id)] = replace(sub, payment_method_id="pm_ok")
    world.clock.advance(timedelta(days=1))
    assert world.scheduled.process_failed_payment(CID, sub_id, world.clock.now()) == (
        "retry_succeeded"
    )

    assert world.publish() == ["payment_received"]
    assert world.republish_all() == []
    received = world.mailer.sent[-1]
    assert received.to == "ada@example.org"
    assert received.subject == "Payment received: 43.00 USD for Gold"
    body = received.body
    assert "The membership is active again." in body
    assert "Order summary (payment pay_" in body
    assert ": 2 x 25.00 USD = 50.00 USD" in body
    assert "Credit balance applied: -7.00 USD" in body
    assert "Subtotal: 50.00 USD\nCredit applied: -7.00 USD\nTotal: 43.00 USD" in body
    # The reminder of the grace period that ended with the payment is moot.
    reminder_due = world.ledger.reminders[(CID, sub_id)].due_at
    assert world.dunning.send_last_reminder(CID, sub_id, reminder_due) == "reminder_moot"


def test_an_email_for_a_subscription_paid_since_says_there_is_nothing_to_pay() -> None:
    world = DunningWorld()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(2500, retry_days=(1,), grace_days=7), owner)
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    world.renew_at_period_end(sub_id)
    world.subscriptions.cancel(CID, sub_id, "now")  # before the failure was published

    world.publish()
    [email] = world.mailer.sent
    assert "no longer waiting for a payment, so there is no link to pay" in email.body
    assert "Pay now" not in email.body and world.links.issued == []


def test_ses_down_releases_the_claim_and_the_next_publish_sends() -> None:
    world = DunningWorld(mailer=FlakyMailer())  # type: ignore[arg-type]
    world.mailer.down = 1  # type: ignore[attr-defined]
    with pytest.raises(Unavailable):
        failed_renewal(world)
    assert world.mailer.sent == []
    assert world.publish().count("payment_failed") == 1
    assert len(world.mailer.sent) == 1


def test_a_declined_payment_the_owner_attempts_sends_no_email_and_keeps_the_link() -> None:
    """The payment-failed email follows automatic charges (renewal, retry). A reactivation the
    owner (pay page) or the operator attempts and sees declined mails nothing, and issues no
    link, so the link the owner is paying through keeps working."""
    from chalicelib.domain.errors import PaymentFailed

    world = DunningWorld()
    sub_id = failed_renewal(world)
    assert len(world.mailer.sent) == 1 and len(world.links.issued) == 1

    with pytest.raises(PaymentFailed):
        world.subscriptions.reactivate(
            CID,
            sub_id,
            payment_method_id=None,
            owner_id=None,
            billing_cycle=None,
            member_ids=None,
            on_session=True,
        )
    assert world.publish() == []
    assert len(world.mailer.sent) == 1
    assert len(world.links.issued) == 1


def _failure_email_of_a_renewal_failed_without_stripe(
    make_it_fail: Callable[[DunningWorld], None],
) -> tuple[DunningWorld, Email]:
    """An active subscription whose renewal `make_it_fail` turns into a failure decided without
    Stripe; the one email the failure sends."""
    world = DunningWorld()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(2500, retry_days=(1, 3), grace_days=GRACE_DAYS), owner)
    make_it_fail(world)
    assert world.renew_at_period_end(sub_id) == "renewal_failed"
    world.publish()
    [email] = world.mailer.sent
    return world, email


def _detach_the_card(world: DunningWorld) -> None:
    snapshot = world.store.cards[(CID, "pm_ok")]
    world.store.cards[(CID, "pm_ok")] = {**snapshot, "detached_at": world.clock.now().isoformat()}


def _disconnect_the_communitys_account(world: DunningWorld) -> None:
    world.store.deauthorized[CID] = "acct_gym"


def test_a_detached_card_email_asks_for_another_card_and_blames_no_bank() -> None:
    """A renewal of a card detached from the owner's customer fails without Stripe: the
    email must not say the bank declined, nor promise to try the same card again."""
    _, email = _failure_email_of_a_renewal_failed_without_stripe(_detach_the_card)

    assert "Reason: The card was removed from your account" in email.body
    assert "bank" not in email.body
    assert "We will try the card again" not in email.body
    assert "please pay with another card" in email.body
    assert "Pay now: https://pay.example/pay/tok_1" in email.body


def test_a_failure_of_the_communitys_account_sends_no_link_that_cannot_work() -> None:
    """The community's Stripe account disconnected the platform: the renewal fails without
    Stripe, and nothing the owner does can pay it until the community reconnects (the pay page
    answers 409 meanwhile). The email says so and carries no pay-now link, and no link is
    issued; it still says when we try again and when the membership ends."""
    world, email = _failure_email_of_a_renewal_failed_without_stripe(
        _disconnect_the_communitys_account
    )

    assert "Reason: The community's payment account is not connected right now" in email.body
    assert "bank" not in email.body
    assert "Pay now:" not in email.body
    assert world.links.issued == []
    assert "Nothing is needed from you now" in email.body
    assert "We will try again on" in email.body
    assert "the membership will be cancelled on" in email.body
