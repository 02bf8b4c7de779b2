"""Hard declines stop automatic retries; every decline reads in plain words (domain/declines.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.charge_outcomes import apply_charge_failed, begin_charge
from chalicelib.domain.charge_planning import plan_renewal, plan_retry
from chalicelib.domain.declines import HARD_DECLINE_CODES, decline_reason, is_hard_decline
from chalicelib.domain.subscriptions import Subscription
from tests.unit.domain.factories import active_sub, make_plan, stored


def failed_renewal(decline_code: str | None, code: str = "card_declined") -> Subscription:
    sub = active_sub(plan=make_plan(grace_days=14, retry_days=(3, 7)))
    period = sub.current_period
    assert period is not None
    charge = plan_renewal(sub, period.end, owner_credit=0)
    begun = stored(begin_charge(sub, charge, "pay_r", period.end).subscription)
    outcome = apply_charge_failed(begun, "pay_r", period.end, code=code, decline_code=decline_code)
    return stored(outcome.subscription)


@pytest.mark.parametrize("decline_code", ["stolen_card", "lost_card", "pickup_card", "fraudulent"])
def test_a_hard_decline_of_a_renewal_schedules_no_retry_and_keeps_the_grace(
    decline_code: str,
) -> None:
    failed = failed_renewal(decline_code)

    assert failed.status == "failed_payment"
    assert failed.next_retry_at is None
    assert failed.failed_at is not None and failed.grace_ends_at is not None
    assert failed.grace_ends_at == failed.failed_at + timedelta(days=14)
    assert failed.cancel_at == failed.grace_ends_at
    # The scheduler's next action is the grace end, not a retry.
    assert failed.next_action is not None
    assert (failed.next_action.action, failed.next_action.due_at) == (
        "end_grace",
        failed.grace_ends_at,
    )
    # and the grace end still cancels
    assert failed.end_grace(failed.grace_ends_at).subscription.status == "cancelled"


def test_a_soft_decline_keeps_the_retry_schedule() -> None:
    failed = failed_renewal("insufficient_funds")

    assert failed.failed_at is not None
    assert failed.next_retry_at == failed.failed_at + timedelta(days=3)
    assert failed.next_action is not None and failed.next_action.action == "retry"


def test_a_hard_decline_on_a_retry_stops_the_retries_left() -> None:
    failed = failed_renewal("insufficient_funds")
    assert failed.next_retry_at is not None
    retry_at = failed.next_retry_at
    charge = plan_retry(failed, retry_at, owner_credit=0)
    begun = stored(begin_charge(failed, charge, "pay_t", retry_at).subscription)

    outcome = apply_charge_failed(
        begun, "pay_t", retry_at, code="card_declined", decline_code="pickup_card"
    )

    assert outcome.subscription.next_retry_at is None  # the 7-day retry is not scheduled
    assert outcome.subscription.retry_count == 1
    assert outcome.event.details["retries_stopped"] == "pickup_card"
    assert outcome.subscription.next_action is not None
    assert outcome.subscription.next_action.action == "end_grace"


def test_hard_and_soft_codes() -> None:
    for code in ("stolen_card", "lost_card", "pickup_card", "fraudulent", "restricted_card"):
        assert is_hard_decline("card_declined", code)
    for soft in ("insufficient_funds", "generic_decline", "expired_card", "do_not_honor", None):
        assert not is_hard_decline("card_declined", soft)
    assert not is_hard_decline("authentication_required", "authentication_required")
    assert not is_hard_decline("expired_card", None)


def test_declines_in_plain_words() -> None:
    assert decline_reason("card_declined", "insufficient_funds") == (
        "The card has insufficient funds."
    )
    assert decline_reason("expired_card", None) == "The card has expired."
    assert decline_reason("incorrect_cvc", None) == (
        "The card's security code (CVC) was not accepted."
    )
    assert "confirm this payment yourself" in decline_reason(
        "authentication_required", "authentication_required"
    )
    assert decline_reason("card_declined", None) == (
        "Your bank declined the payment without giving a reason."
    )
    assert decline_reason("card_declined", "something_new") == (
        "Your bank declined the payment without giving a reason."
    )
    assert decline_reason("weird", "weirder") == "Your bank declined the payment."
    # Stolen / lost / pick-up / fraud are told as a generic "do not retry" (Stripe's advice).
    for code in HARD_DECLINE_CODES:
        reason = decline_reason("card_declined", code)
        assert reason.startswith("Your bank declined the payment and asked us not to try")
        assert "stolen" not in reason and "lost" not in reason


def test_failures_we_decide_without_the_bank_never_read_as_a_bank_decline() -> None:
    """A charge we never sent (detached card, no card on the community's account, the
    community disconnected Stripe) was not declined by anyone's bank: the owner is told why."""
    for code in ("card_detached", "no_card_on_account", "account_disconnected"):
        assert "bank" not in decline_reason(code, None)
    assert "removed" in decline_reason("card_detached", None)
