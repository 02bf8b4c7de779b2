"""What a Stripe event on a connected account may claim, and what we check before we believe it.

An event about a connected account is genuinely signed by Stripe, but its object was written by
whoever controls that account: the community's owner can create PaymentIntents, charges and
refunds there, with any metadata. So our metadata ids only say where to look; an event counts
for a payment only if it is about that payment's own PaymentIntent (docs/DESIGN.md section 7,
docs/rules/money.md "What a Stripe event may claim")."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.adapters.dynamodb.communities import community_key
from tests.integration.conftest import PLATFORM_KEY
from tests.support import stripe_events as se
from tests.support.localstripe import localstripe_url
from tests.support.webhook_flow import Billing, Pending, billing, community, failed_twin

__all__ = ["billing", "localstripe_url"]

ACCOUNT = "acct_claimsgym"


def ids(pending: Pending) -> dict[str, str]:
    return {
        "community_id": pending.community_id,
        "subscription_id": pending.subscription_id,
        "payment_id": pending.payment_id,
    }


def result(billing: Billing, payload: dict[str, Any]) -> str:
    status, body = billing.deliver(payload)
    assert status == 200, body
    return str(body["result"])


def owners_own_success(pending: Pending, **changes: Any) -> dict[str, Any]:
    """`payment_intent.succeeded` for a PaymentIntent the account's owner made themselves on
    their account, naming our payment in its metadata (Stripe signs it like any other)."""
    intent = se.payment_intent(status="succeeded", metadata=ids(pending), amount=2500)
    intent.update(changes)
    return se.event("payment_intent.succeeded", intent, account=ACCOUNT)


def on_account(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "id": se.unique("evt"), "account": ACCOUNT}


def state(billing: Billing, pending: Pending) -> tuple[Any, ...]:
    return billing.payment(pending), billing.subscription(pending), billing.audit(pending)


def test_a_success_of_another_payment_intent_never_settles_a_failed_payment(
    billing: Billing,
) -> None:
    """The payment failed on its own PaymentIntent; the owner's own PaymentIntent, succeeded
    with our ids in its metadata, is not that payment's: ignored, nothing paid, no refund."""
    pending = billing.pending(account=ACCOUNT)
    assert result(billing, on_account(failed_twin(pending.succeeded_event, "evt_x"))) == (
        "processed"
    )
    failed = billing.payment(pending)
    assert (failed["status"], failed["stripe"]["payment_intent_id"]) == (
        "failed",
        pending.intent_id,
    )
    before = state(billing, pending)

    assert result(billing, owners_own_success(pending)) == "ignored"

    assert state(billing, pending) == before


def test_a_success_for_a_payment_not_knowing_its_intent_must_be_for_what_we_asked(
    billing: Billing,
) -> None:
    """Stripe's answer to the charge was lost: the payment records no PaymentIntent yet. A
    success counts only on the payment's account, for its amount and currency (and, where
    Stripe's object shows them, its application fee, which only the platform can set, and a
    platform as its maker)."""
    pending = billing.pending(account=ACCOUNT)  # no fee: localstripe refuses one
    payment = billing.payment(pending)
    assert payment["stripe"]["payment_intent_id"] is None
    assert payment["application_fee_amount"] == 0
    before = state(billing, pending)

    for claim in (
        {"amount": 1, "amount_received": 1},
        {"currency": "eur"},
        {"application_fee_amount": 125},
        {"application": None},  # the account made it itself (ours name our Connect app)
    ):
        assert result(billing, owners_own_success(pending, **claim)) == "ignored", claim
        assert state(billing, pending) == before, claim

    assert result(billing, on_account(pending.succeeded_event)) == "processed"
    assert billing.payment(pending)["stripe"]["payment_intent_id"] == pending.intent_id
    assert billing.subscription(pending)["status"] == "active"


def test_a_refund_of_another_charge_naming_our_payment_is_ignored(billing: Billing) -> None:
    """The owner refunds a charge of their own whose metadata names our paid payment: the
    charge's PaymentIntent is not the payment's, so the payment is not refunded."""
    paid = billing.paid(account=ACCOUNT)
    before = state(billing, paid)
    charge = se.charge(
        charge_id=se.unique("ch"),
        payment_intent_id=se.unique("pi"),
        amount=2500,
        amount_refunded=2500,
        metadata=ids(paid),
    )

    assert result(billing, se.event("charge.refunded", charge, account=ACCOUNT)) == "ignored"

    assert state(billing, paid) == before


def test_a_dispute_of_another_charge_naming_our_payment_is_ignored(billing: Billing) -> None:
    paid = billing.paid(account=ACCOUNT)
    before = state(billing, paid)
    dispute = se.dispute(
        charge_id=se.unique("ch"),
        payment_intent_id=se.unique("pi"),
        amount=2500,
        status="needs_response",
    )
    dispute["metadata"] = ids(paid)
    opened = se.event("charge.dispute.created", dispute, account=ACCOUNT)

    assert result(billing, opened) == "ignored"

    assert state(billing, paid) == before


def deauthorization(account: str, *, livemode: bool) -> dict[str, Any]:
    application = {"id": "ca_membership", "object": "application", "name": "Membership billing"}
    event = se.event("account.application.deauthorized", application, account=account)
    return {**event, "livemode": livemode}


def deauthorized(billing: Billing, community_id: str) -> bool:
    item = billing.env.container.dynamodb.get_item(
        TableName=billing.env.settings.table_name, Key=community_key(community_id)
    )["Item"]
    return "stripe_deauthorized_at" in item


def test_a_live_stage_believes_no_test_mode_event(
    billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe sends a live Connect endpoint the connected accounts' test-mode events too
    (signed with its live secret), and its objects cost the account's owner nothing to make:
    on a stage whose Stripe key is live, a test-mode event is ignored and changes nothing."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_integration")
    community_id, _ = community(billing.env.client, PLATFORM_KEY, ACCOUNT)

    status, body = billing.deliver(deauthorization(ACCOUNT, livemode=False))

    assert (status, body["result"]) == (200, "ignored")
    assert not deauthorized(billing, community_id)
    assert result(billing, deauthorization(ACCOUNT, livemode=True)) == "processed"
    assert deauthorized(billing, community_id)


def test_a_test_stage_believes_no_live_event(billing: Billing) -> None:
    community_id, _ = community(billing.env.client, PLATFORM_KEY, ACCOUNT)

    assert result(billing, deauthorization(ACCOUNT, livemode=True)) == "ignored"

    assert not deauthorized(billing, community_id)
    assert result(billing, deauthorization(ACCOUNT, livemode=False)) == "processed"


def test_news_of_a_connected_accounts_payment_without_the_account_is_ignored(
    billing: Billing,
) -> None:
    """The payment was charged on the connected account: the same PaymentIntent's news from
    the platform account (no `account`) is not that payment's."""
    pending = billing.pending(account=ACCOUNT)
    assert "account" not in pending.succeeded_event
    before = state(billing, pending)

    assert result(billing, pending.succeeded_event) == "ignored"

    assert state(billing, pending) == before
