"""A charge on a community's connected account: the exact request our adapter sends (localstripe
rejects `application_fee_amount`, so a recording server answers as Stripe would)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.clock import FixedClock
from chalicelib.adapters.dynamodb.card_snapshots import CardSnapshots
from chalicelib.config import Settings
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import AccountDisconnected, PaymentFailed
from chalicelib.domain.plans import Plan
from chalicelib.domain.profiles import Profile
from chalicelib.services.refunds import RefundPending
from tests.support.stripe_recorder import StripeRecorder, stripe_recorder

NOW = datetime(2026, 3, 1, tzinfo=UTC)
CID = "com_connected"


@pytest.fixture
def connected(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[bootstrap.Container, StripeRecorder]]:
    with stripe_recorder() as stripe:
        monkeypatch.setenv("BILLING_STAGE", "test")
        monkeypatch.setenv("BILLING_TABLE_NAME", "membership-billing-test")
        monkeypatch.setenv("STRIPE_API_BASE", stripe.url)
        container = bootstrap.Container(Settings.from_env(), clock=FixedClock(NOW))
        container.communities.create(Community(CID, "Dojo", "usd", "acct_dojo", 250, NOW))
        plan = Plan(
            "plan_1", CID, "Gold", None, "usd", {"month": 3000}, 500, 14, (), None, "active", NOW
        )
        container.plans.create(plan)
        owner = Profile(
            "prof_1", CID, "customer", "Ada", "ada@example.com", None, False, {}, "usd", NOW
        )
        container.profiles.create(owner)
        container.profiles.set_stripe_customer(CID, owner.id, "cus_dojo", "acct_dojo", None)
        CardSnapshots(container.dynamodb, container.settings.table_name).put(
            CID,
            {
                "id": "pm_dojo",
                "profile_id": owner.id,
                "customer": "cus_dojo",
                "type_of_method": "card",
                "brand": "visa",
                "last4": "4242",
                "exp_month": 12,
                "exp_year": 2031,
            },
        )
        yield container, stripe


def new_subscription(container: bootstrap.Container) -> str:
    sub = container.subscription_service.create(
        CID,
        plan_id="plan_1",
        owner_id="prof_1",
        member_ids=["prof_1"],
        billing_cycle="month",
        payment_method_id="pm_dojo",
        waive_activation_fee=False,
    )
    return sub.id


def test_the_fee_and_the_account_header_are_sent_and_recorded(
    connected: tuple[bootstrap.Container, StripeRecorder],
) -> None:
    container, stripe = connected
    sub_id = new_subscription(container)
    stripe.reply(
        200,
        {
            "id": "pi_dojo",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 3500,
            "amount_received": 3500,
            "latest_charge": "ch_dojo",
        },
    )

    result = container.subscription_service.activate(CID, sub_id, None)

    [sent] = stripe.requests
    assert sent.path == "/v1/payment_intents"
    assert sent.headers["stripe-account"] == "acct_dojo"
    payment = result.payment
    assert payment is not None
    assert sent.headers["idempotency-key"] == payment.id
    assert sent.form["application_fee_amount"] == "88"  # 3500 x 2.5 % = 87.5, half up
    assert (sent.form["amount"], sent.form["customer"], sent.form["payment_method"]) == (
        "3500",
        "cus_dojo",
        "pm_dojo",
    )
    assert sent.form["metadata[payment_id]"] == payment.id
    assert sent.form["metadata[community_id]"] == CID
    assert (payment.status, payment.application_fee_amount) == ("succeeded", 88)
    assert (payment.stripe.account_id, payment.stripe.payment_intent_id) == ("acct_dojo", "pi_dojo")
    assert result.subscription.status == "active"

    # A refund goes to the same account, keyed by our refund id.
    stripe.reply(200, {"id": "re_1", "object": "refund", "amount": 500, "status": "succeeded"})
    refund = container.payment_service.refund(CID, payment.id, 500, "goodwill")
    refund_request = stripe.requests[-1]
    assert refund_request.path == "/v1/refunds"
    assert refund_request.headers["stripe-account"] == "acct_dojo"
    assert refund_request.headers["idempotency-key"] == refund.id
    assert refund_request.form["payment_intent"] == "pi_dojo"
    assert refund_request.form["metadata[reason]"] == "goodwill"
    # The platform's fee is not refunded (Stripe's default; docs/rules/money.md).
    assert "refund_application_fee" not in refund_request.form
    after = container.payment_service.get(CID, payment.id)
    assert (after.amount_refunded, after.application_fee_amount) == (500, 88)


def test_a_decline_on_the_connected_account_records_a_failed_payment(
    connected: tuple[bootstrap.Container, StripeRecorder],
) -> None:
    container, stripe = connected
    sub_id = new_subscription(container)
    stripe.reply(
        402,
        {
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Insufficient funds.",
                "charge": "ch_x",
                "payment_intent": {
                    "id": "pi_x",
                    "object": "payment_intent",
                    "status": "requires_payment_method",
                },
            }
        },
    )
    with pytest.raises(PaymentFailed) as raised:
        container.subscription_service.activate(CID, sub_id, None)
    failed = raised.value.payment
    assert failed is not None
    assert failed["failure"] == {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Insufficient funds.",
    }
    assert failed["stripe"]["payment_intent_id"] == "pi_x"
    assert container.subscription_service.get(CID, sub_id).status == "inactive"


def test_a_refund_stripe_refuses_undoes_the_reservation(
    connected: tuple[bootstrap.Container, StripeRecorder],
) -> None:
    container, stripe = connected
    sub_id = new_subscription(container)
    stripe.reply(
        200,
        {
            "id": "pi_r",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 3500,
            "latest_charge": "ch_r",
        },
    )
    payment = container.subscription_service.activate(CID, sub_id, None).payment
    assert payment is not None
    stripe.reply(400, {"error": {"type": "invalid_request_error", "message": "Charge disputed"}})
    with pytest.raises(Exception, match="Stripe refused"):
        container.payment_service.refund(CID, payment.id, None, None)
    after = container.payment_service.get(CID, payment.id)
    assert (after.status, after.amount_refunded) == ("succeeded", 0)
    refunds = container.payments.refunds(CID, payment.id)
    assert [(r.amount, r.status) for r in refunds] == [(3500, "failed")]
    trail = [e["type"] for e in container.audit_events.list(CID, sub_id, 100, None).items]
    assert trail[-2:] == ["payment.refund_started", "payment.refund_failed"]


NO_ACCESS = {
    "error": {
        "type": "invalid_request_error",
        "message": "The provided key 'sk_test_***' does not have access to account 'acct_dojo' "
        "(or that account does not exist). Application access may have been revoked.",
    }
}


def test_an_account_that_disconnected_the_platform_refuses_the_refund_a_409_reserving_nothing(
    connected: tuple[bootstrap.Container, StripeRecorder],
) -> None:
    """Stripe answers 403 to a platform the account deauthorized (we may not have heard of it:
    a lost webhook, or an account the community has left). That is a refusal, not an outage:
    409, nothing reserved, nothing left pending for a recovery pass that cannot read it."""
    container, stripe = connected
    sub_id = new_subscription(container)
    stripe.reply(
        200,
        {"id": "pi_d", "object": "payment_intent", "status": "succeeded", "amount": 3500},
    )
    payment = container.subscription_service.activate(CID, sub_id, None).payment
    assert payment is not None
    stripe.reply(403, NO_ACCESS)

    with pytest.raises(AccountDisconnected, match="acct_dojo"):
        container.payment_service.refund(CID, payment.id, 1000, None)

    assert stripe.requests[-1].headers["stripe-account"] == "acct_dojo"
    after = container.payment_service.get(CID, payment.id)
    assert (after.amount_refunded, after.amount_refund_pending) == (0, 0)
    assert after.refund_pending_since is None
    assert [(r.amount, r.status) for r in container.payments.refunds(CID, payment.id)] == [
        (1000, "failed")
    ]


def test_a_charge_the_account_refuses_us_is_a_failed_payment_not_a_pending_one(
    connected: tuple[bootstrap.Container, StripeRecorder],
) -> None:
    """Stripe made no PaymentIntent: the payment fails `account_disconnected` (a 402 here), it
    does not wait for a recovery pass that could never read the account."""
    container, stripe = connected
    sub_id = new_subscription(container)
    stripe.reply(403, NO_ACCESS)

    with pytest.raises(PaymentFailed) as failed:
        container.subscription_service.activate(CID, sub_id, None)

    shown = failed.value.payment
    assert shown is not None
    assert (shown["status"], shown["failure"]["code"]) == ("failed", "account_disconnected")
    assert container.subscription_service.get(CID, sub_id).status == "inactive"


@pytest.mark.parametrize(
    ("status", "message", "refused"),
    [
        (401, NO_ACCESS["error"]["message"], True),  # Stripe names the account: it left us
        (401, "Invalid API Key provided: sk_test_***", False),  # our key: not the account's
        (503, "Stripe is down", False),
    ],
)
def test_only_stripe_naming_the_account_reads_as_a_disconnect(
    connected: tuple[bootstrap.Container, StripeRecorder], status: int, message: str, refused: bool
) -> None:
    container, stripe = connected
    sub_id = new_subscription(container)
    stripe.reply(200, {"id": "pi_k", "object": "payment_intent", "status": "succeeded"})
    payment = container.subscription_service.activate(CID, sub_id, None).payment
    assert payment is not None
    kind = "invalid_request_error" if status == 401 else "api_error"
    for _ in range(2):  # one network retry of a 503
        stripe.reply(status, {"error": {"type": kind, "message": message}})

    expected = AccountDisconnected if refused else RefundPending
    with pytest.raises(expected):
        container.payment_service.refund(CID, payment.id, 1000, None)
