"""charge.refunded and charge.dispute.* events, built and signed as Stripe builds them (localstripe
sends none), update our payments; late and repeated ones never move a payment backwards."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import PLATFORM_KEY
from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url
from tests.support.webhook_flow import Billing, Pending, billing, call, community

__all__ = ["billing", "localstripe_url"]


def ids(pending: Pending) -> dict[str, str]:
    return {
        "community_id": pending.community_id,
        "subscription_id": pending.subscription_id,
        "payment_id": pending.payment_id,
    }


def dispute(
    billing: Billing, pending: Pending, event_type: str, status: str, account: str | None = None
) -> dict[str, Any]:
    payment = billing.payment(pending)
    obj = se.dispute(
        charge_id=payment["stripe"]["charge_id"],
        payment_intent_id=pending.intent_id,
        amount=payment["total"],
        status=status,
    )
    return se.event(event_type, obj, account=account or payment["stripe"]["account_id"])


def result(billing: Billing, payload: dict[str, Any]) -> str:
    status, body = billing.deliver(payload)
    assert status == 200, body
    return str(body["result"])


def test_dashboard_refunds_move_the_payment_forward_once(billing: Billing) -> None:
    paid = billing.paid()
    partial = billing.charge_refunded(paid, 1000)
    assert result(billing, partial) == "processed"
    payment = billing.payment(paid)
    assert (payment["status"], payment["amount_refunded"], payment["amount_paid"]) == (
        "partially_refunded",
        1000,
        2500,
    )
    assert "payment.refunded" in {e["type"] for e in billing.audit(paid)}
    audit = len(billing.audit(paid))
    # The same event again: a duplicate, no second effect.
    assert result(billing, partial) == "duplicate"
    assert len(billing.audit(paid)) == audit
    # A charge without our metadata is found by its PaymentIntent.
    assert result(billing, billing.charge_refunded(paid, 1500, metadata=False)) == "processed"
    assert billing.payment(paid)["amount_refunded"] == 1500
    result(billing, billing.charge_refunded(paid, 2500))
    payment = billing.payment(paid)
    assert (payment["status"], payment["amount_refunded"]) == ("refunded", 2500)
    # Older news (a smaller cumulative total) arriving late changes nothing.
    assert result(billing, billing.charge_refunded(paid, 1200)) == "processed"
    payment = billing.payment(paid)
    assert (payment["status"], payment["amount_refunded"]) == ("refunded", 2500)


def test_a_refund_of_a_charge_we_do_not_know_is_ignored(billing: Billing) -> None:
    charge = se.charge(
        charge_id="ch_x", payment_intent_id="pi_unknown", amount=100, amount_refunded=100
    )
    assert result(billing, se.event("charge.refunded", charge)) == "ignored"


def test_a_dispute_won_goes_back_and_a_replayed_created_does_not_reopen_it(
    billing: Billing,
) -> None:
    paid = billing.paid()
    result(billing, billing.charge_refunded(paid, 1000))
    created = dispute(billing, paid, "charge.dispute.created", "needs_response")
    assert result(billing, created) == "processed"
    assert billing.payment(paid)["status"] == "disputed"
    assert result(billing, dispute(billing, paid, "charge.dispute.closed", "won")) == "processed"
    assert billing.payment(paid)["status"] == "partially_refunded"
    late = {**created, "id": se.unique("evt")}  # the same news, delivered again later
    assert result(billing, late) == "processed"
    assert billing.payment(paid)["status"] == "partially_refunded"


def test_a_dispute_closed_before_its_created_arrives_ends_closed(billing: Billing) -> None:
    paid = billing.paid()
    created = dispute(billing, paid, "charge.dispute.created", "needs_response")
    result(billing, dispute(billing, paid, "charge.dispute.closed", "won"))
    assert billing.payment(paid)["status"] == "succeeded"
    result(billing, created)
    assert billing.payment(paid)["status"] == "succeeded"


def test_a_connect_dispute_is_routed_by_account_and_lost_stays_disputed(
    billing: Billing,
) -> None:
    paid = billing.paid(account="acct_webhookgym")
    assert billing.payment(paid)["stripe"]["account_id"] == "acct_webhookgym"
    opened = dispute(billing, paid, "charge.dispute.created", "needs_response")
    assert result(billing, opened) == "processed"
    assert billing.payment(paid)["status"] == "disputed"
    # The same charge claimed by an account no community has: not ours.
    other = dispute(billing, paid, "charge.dispute.closed", "lost", account="acct_unknown")
    assert result(billing, other) == "ignored"
    # ... and by the platform account: not this payment.
    platform = dispute(billing, paid, "charge.dispute.closed", "lost")
    platform.pop("account")
    assert result(billing, platform) == "ignored"
    assert billing.payment(paid)["status"] == "disputed"
    lost = dispute(billing, paid, "charge.dispute.closed", "lost")
    assert result(billing, lost) == "processed"
    assert billing.payment(paid)["status"] == "disputed"
    assert "payment.dispute_lost" in {e["type"] for e in billing.audit(paid)}


def test_news_of_a_charge_on_the_account_a_community_has_left_still_reaches_its_payment(
    billing: Billing,
) -> None:
    """The community moved to another connected account; the charge it took on the old one
    is refunded and disputed there later. Stripe reports that on the old account (`account`
    names it): the payment taken there records it, though no community has that account now.
    An event naming an account that is not the payment's still changes nothing."""
    paid = billing.paid(account="acct_leftgym")
    status, _ = call(
        billing.env.client,
        "patch",
        f"/v1/communities/{paid.community_id}",
        PLATFORM_KEY,
        {"stripe_account_id": "acct_newgym"},
    )
    assert status == 200

    assert result(billing, billing.charge_refunded(paid, 1000)) == "processed"
    assert billing.payment(paid)["amount_refunded"] == 1000
    opened = dispute(billing, paid, "charge.dispute.created", "needs_response")
    assert result(billing, opened) == "processed"
    assert billing.payment(paid)["status"] == "disputed"
    # The community's new account, or one nobody has, is not where that charge was taken.
    for account in ("acct_newgym", "acct_unknown"):
        other = dispute(billing, paid, "charge.dispute.closed", "won", account=account)
        assert result(billing, other) == "ignored"
    assert billing.payment(paid)["status"] == "disputed"


def test_news_of_a_charge_on_an_account_now_another_communitys_reaches_the_payment_taken_there(
    billing: Billing,
) -> None:
    """The community left an account that another community then connected. A refund Stripe
    reports on that account of a charge the first community took there is the first
    community's payment's news (found by its PaymentIntent, never by metadata the account's
    new holder could write)."""
    paid = billing.paid(account="acct_passedon")
    status, _ = call(
        billing.env.client,
        "patch",
        f"/v1/communities/{paid.community_id}",
        PLATFORM_KEY,
        {"stripe_account_id": "acct_keptgym"},
    )
    assert status == 200
    community(billing.env.client, PLATFORM_KEY, account="acct_passedon")

    assert result(billing, billing.charge_refunded(paid, 1000)) == "processed"
    assert billing.payment(paid)["amount_refunded"] == 1000


# --- news of a charge that overtakes the payment's own resolution ------------------------------
# The activation's answer was lost (Stripe charged; our payment is pending and does not know its
# PaymentIntent). A refund or dispute reported before `payment_intent.succeeded` resolves the
# payment from Stripe's PaymentIntent first, then applies; it is never consumed unapplied.


def _charge_id(billing: Billing, pending: Pending) -> str:
    from tests.support.localstripe import stripe_for

    intent = stripe_for(billing.cutoff.target).v1.payment_intents.retrieve(pending.intent_id)
    return str(intent.latest_charge)


def test_a_refund_reported_before_the_charges_success_is_applied_not_lost(
    billing: Billing,
) -> None:
    from tests.support.localstripe import stripe_for

    pending = billing.pending()
    assert billing.payment(pending)["status"] == "pending"
    stripe_for(billing.cutoff.target).v1.refunds.create(
        params={"payment_intent": pending.intent_id, "amount": 1000}
    )
    charge = se.charge(
        charge_id=_charge_id(billing, pending),
        payment_intent_id=pending.intent_id,
        amount=2500,
        amount_refunded=1000,
        metadata={},  # a Charge does not carry its PaymentIntent's metadata
    )

    status, body = billing.deliver(se.event("charge.refunded", charge))

    assert (status, body["result"]) == (200, "processed"), body
    payment = billing.payment(pending)
    assert (payment["status"], payment["amount_paid"], payment["amount_refunded"]) == (
        "partially_refunded",
        2500,
        1000,
    )
    assert payment["stripe"]["payment_intent_id"] == pending.intent_id
    assert billing.subscription(pending)["status"] == "active"
    status, body = billing.deliver(pending.succeeded_event)  # the late success changes nothing
    assert status == 200, body
    assert billing.payment(pending)["amount_refunded"] == 1000
    assert billing.payment(pending)["status"] == "partially_refunded"


def test_a_dispute_reported_before_the_charges_success_is_applied_not_lost(
    billing: Billing,
) -> None:
    pending = billing.pending()
    opened = se.dispute(
        charge_id=_charge_id(billing, pending),
        payment_intent_id=pending.intent_id,
        amount=2500,
        status="needs_response",
    )

    status, body = billing.deliver(se.event("charge.dispute.created", opened))

    assert (status, body["result"]) == (200, "processed"), body
    payment = billing.payment(pending)
    assert (payment["status"], payment["amount_paid"]) == ("disputed", 2500)
    status, _ = billing.deliver(pending.succeeded_event)
    assert status == 200
    assert billing.payment(pending)["status"] == "disputed"


def test_news_of_a_charge_no_payment_of_ours_made_is_ignored(billing: Billing) -> None:
    """A charge on our account that is not ours (its PaymentIntent names no payment of ours):
    one look at Stripe's PaymentIntent, then ignored."""
    from tests.support.localstripe import new_card, stripe_for

    client = stripe_for(billing.cutoff.target)
    intent = client.v1.payment_intents.create(
        params={
            "amount": 700,
            "currency": "usd",
            "payment_method": new_card(client, "4242424242424242"),
            "confirm": True,
        }
    )
    charge = se.charge(
        charge_id=str(intent.latest_charge),
        payment_intent_id=intent.id,
        amount=700,
        amount_refunded=700,
        metadata={},
    )
    status, body = billing.deliver(se.event("charge.refunded", charge))
    assert (status, body["result"]) == (200, "ignored"), body
