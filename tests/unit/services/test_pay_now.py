"""Paying through a pay-now link, on the fakes (issue 15): the one charging path, exactly once,
authentication, stale and expired links."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.errors import Conflict, InvalidRequest, PaymentFailed, Unavailable
from chalicelib.domain.payments import PENDING_RECOVERY_DELAY
from tests.support.dunning_world import FlakyMailer
from tests.support.world import CID, PUBLIC_URL, World


def failed(world: World, grace_days: int = 14) -> tuple[str, str]:
    """(subscription id, link token): the renewal was declined, a link was issued."""
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(2500, retry_days=(1,), grace_days=grace_days), owner)
    world.card_checks.on_stripe["pm_decline"] = owner.stripe_customer_id or ""
    world.subscriptions.update(CID, sub_id, {"payment_method_id": "pm_decline"})
    assert world.renew_at_period_end(sub_id) == "renewal_failed"
    world.clock.advance(timedelta(hours=2))
    issued = world.payment_links.issue(CID, sub_id, world.clock.now())
    return sub_id, issued.url.removeprefix(f"{PUBLIC_URL}/pay/")


def test_the_page_shows_the_reactivation_preview_as_the_amount_due() -> None:
    world = World()
    sub_id, token = failed(world)
    page = world.pay_now.page(token)
    assert (page.state, page.processing) == ("payable", False)
    assert (page.community_name, page.plan_name, page.member_names) == (
        "Harbour gym",
        "Gold",
        ["Ada"],
    )
    assert page.summary == world.subscriptions.preview(CID, sub_id, "reactivate")
    assert page.summary is not None and page.summary["total"] == 2500


def test_paying_charges_once_sets_the_card_and_starts_a_new_cycle_now() -> None:
    world = World()
    sub_id, token = failed(world)
    before = len(world.gateway.requests)
    result = world.pay_now.pay(token, "pm_new")
    assert result.status == "paid"
    sub = world.store.subscriptions[(CID, sub_id)]
    assert (sub.status, sub.payment_method_id) == ("active", "pm_new")
    assert sub.current_period is not None
    assert sub.current_period.start == world.clock.now().replace(microsecond=0)
    [charge] = world.gateway.requests[before:]
    assert (charge.amount, charge.on_session, charge.metadata["kind"]) == (
        2500,
        True,
        "reactivation",
    )
    assert world.pay_now.page(token).state == "paid"
    with pytest.raises(Conflict):
        world.pay_now.pay(token, "pm_new")  # the second tab, or a reload: nothing charged
    assert len(world.gateway.requests) == before + 1


def test_a_declined_card_is_a_402_and_the_link_can_be_paid_with_another() -> None:
    world = World()
    sub_id, token = failed(world)
    with pytest.raises(PaymentFailed):
        world.pay_now.pay(token, "pm_decline")
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"
    assert world.pay_now.page(token).state == "payable"
    assert world.pay_now.pay(token, "pm_ok").status == "paid"


def test_a_card_that_asks_for_authentication_is_finished_by_confirm() -> None:
    world = World()
    sub_id, token = failed(world)
    before = len(world.gateway.requests)
    result = world.pay_now.pay(token, "pm_auth")
    assert result.status == "requires_action" and result.client_secret
    intent_id = result.client_secret.split("_secret_")[0]
    page = world.pay_now.page(token)
    assert (page.state, page.processing) == ("payable", True)
    with pytest.raises(Conflict):
        world.pay_now.pay(token, "pm_ok")  # a second tab while the first authenticates
    with pytest.raises(InvalidRequest):
        world.pay_now.confirm(token, "pi_someone_else")
    world.gateway.handle_card_action(intent_id)
    assert world.pay_now.confirm(token, intent_id).status == "paid"
    assert world.store.subscriptions[(CID, sub_id)].status == "active"
    assert len(world.gateway.requests) == before + 1
    assert world.pay_now.confirm(token, intent_id).status == "paid"  # a repeated confirm


def test_an_abandoned_authentication_fails_and_the_link_stays_payable() -> None:
    world = World()
    sub_id, token = failed(world)
    result = world.pay_now.pay(token, "pm_auth")
    assert result.client_secret is not None
    intent_id = result.client_secret.split("_secret_")[0]
    # Not authenticated (yet): "processing", nothing failed; the page may try again.
    assert world.pay_now.confirm(token, intent_id).status == "processing"
    assert world.gateway.intents[intent_id]["status"] == "requires_action"
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.pending_charge is not None and sub.pending_charge.payment_id is not None
    world.clock.advance(timedelta(minutes=6))  # the recovery pass fails and cancels it
    outcome = world.scheduled.recover_pending_payment(
        CID, sub.pending_charge.payment_id, world.clock.now()
    )
    assert outcome != "still_pending", outcome
    assert world.gateway.intents[intent_id]["status"] == "canceled"
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"
    assert world.pay_now.page(token).state == "payable"


def test_a_link_opened_after_the_cancellation_charges_nothing() -> None:
    world = World()
    sub_id, token = failed(world, grace_days=3)
    sub = world.store.subscriptions[(CID, sub_id)]
    assert sub.cancel_at is not None
    world.clock.advance_to(sub.cancel_at)
    world.scheduled.process_failed_payment(CID, sub_id, world.clock.now())
    before = len(world.gateway.requests)
    assert world.pay_now.page(token).state == "cancelled"
    for attempt in (
        lambda: world.pay_now.pay(token, "pm_ok"),
        lambda: world.pay_now.setup_intent(token),
    ):
        with pytest.raises(Conflict):
            attempt()
    assert len(world.gateway.requests) == before


def test_an_expired_link_emails_a_new_one_to_the_owner_on_file_once() -> None:
    world = World()
    sub_id, token = failed(world)
    with pytest.raises(Conflict):
        world.pay_now.email_new_link(token)  # still valid: no new link needed
    world.clock.advance(timedelta(days=7))
    assert world.pay_now.page(token).state == "expired"
    with pytest.raises(Conflict):
        world.pay_now.pay(token, "pm_ok")
    assert world.pay_now.email_new_link(token) == "a••••@example.org"
    [email] = world.mailer.sent
    assert email.to == "ada@example.org"
    new_token = email.body.split(f"{PUBLIC_URL}/pay/")[1].split()[0]
    assert world.pay_now.page(new_token).state == "payable"
    with pytest.raises(Conflict):
        world.pay_now.email_new_link(token)  # once per expired link
    assert len(world.mailer.sent) == 1
    assert world.pay_now.pay(new_token, "pm_ok").status == "paid"
    assert world.store.subscriptions[(CID, sub_id)].status == "active"


def test_ses_throttling_the_new_link_email_keeps_the_one_resend_for_the_next_ask() -> None:
    world = World(mailer=FlakyMailer())  # type: ignore[arg-type]
    _, token = failed(world)
    world.clock.advance(timedelta(days=7))
    world.mailer.down = 1  # type: ignore[attr-defined]
    with pytest.raises(Unavailable):
        world.pay_now.email_new_link(token)
    assert world.mailer.sent == []
    assert world.pay_now.email_new_link(token) == "a••••@example.org"
    [email] = world.mailer.sent
    new_token = email.body.split(f"{PUBLIC_URL}/pay/")[1].split()[0]
    assert world.pay_now.page(new_token).state == "payable"
    with pytest.raises(Conflict):
        world.pay_now.email_new_link(token)  # still once per expired link


def test_recovery_confirms_an_authenticated_payment_whose_page_never_came_back() -> None:
    world = World()
    sub_id, token = failed(world)
    result = world.pay_now.pay(token, "pm_auth")
    assert result.client_secret is not None
    intent_id = result.client_secret.split("_secret_")[0]
    world.gateway.handle_card_action(intent_id)  # authenticated, then the tab was closed
    payment_id = world.store.subscriptions[(CID, sub_id)].pending_charge.payment_id  # type: ignore[union-attr]
    assert payment_id is not None
    world.clock.advance(PENDING_RECOVERY_DELAY)
    outcome = world.scheduled.recover_pending_payment(CID, payment_id, world.clock.now())
    assert outcome == "recovered_succeeded"
    assert world.store.subscriptions[(CID, sub_id)].status == "active"
    assert world.pay_now.page(token).state == "paid"


def test_recovery_fails_a_payment_still_waiting_for_authentication() -> None:
    world = World()
    sub_id, token = failed(world)
    world.pay_now.pay(token, "pm_auth")
    payment_id = world.store.subscriptions[(CID, sub_id)].pending_charge.payment_id  # type: ignore[union-attr]
    assert payment_id is not None
    world.clock.advance(PENDING_RECOVERY_DELAY)
    outcome = world.scheduled.recover_pending_payment(CID, payment_id, world.clock.now())
    assert outcome == "recovered_failed"
    assert world.store.subscriptions[(CID, sub_id)].status == "failed_payment"
    assert world.pay_now.page(token).state == "payable"
