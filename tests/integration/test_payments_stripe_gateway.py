"""The Stripe payment gateway against localstripe, and its exact requests on a recording server."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.adapters.stripe.payments import ChargeRequest, StripePaymentGateway
from chalicelib.config import Settings
from chalicelib.domain.errors import InvalidRequest, Unavailable
from tests.support.localstripe import card_on_customer, localstripe_url, stripe_for
from tests.support.stripe_recorder import stripe_recorder

__all__ = ["localstripe_url"]


def gateway(url: str) -> StripePaymentGateway:
    settings = Settings.from_env({"BILLING_STAGE": "test", "STRIPE_API_BASE": url})
    return StripePaymentGateway(settings, SecretsProvider(settings))


def charge_request(customer: str, method: str, payment_id: str, **extra: object) -> ChargeRequest:
    values: dict[str, object] = {
        "payment_id": payment_id,
        "amount": 2500,
        "currency": "usd",
        "customer_id": customer,
        "payment_method_id": method,
        "stripe_account_id": None,
        "application_fee_amount": 0,
        "metadata": {"community_id": "com_1", "subscription_id": "sub_1", "payment_id": payment_id},
    }
    values.update(extra)
    return ChargeRequest(**values)  # type: ignore[arg-type]


def test_a_good_card_succeeds_with_our_ids_in_metadata(localstripe_url: str) -> None:
    client = stripe_for(localstripe_url)
    customer, method = card_on_customer(client, "4242424242424242")
    outcome = gateway(localstripe_url).charge(charge_request(customer, method, "pay_gw_ok"))
    assert outcome.status == "succeeded"
    assert outcome.amount_received == 2500
    intent = client.v1.payment_intents.retrieve(outcome.payment_intent_id)
    assert intent.status == "succeeded"
    assert intent.amount == 2500
    assert intent.latest_charge.id == outcome.charge_id
    assert intent.metadata.to_dict() == {
        "community_id": "com_1",
        "subscription_id": "sub_1",
        "payment_id": "pay_gw_ok",
    }


def test_a_declined_card_fails_with_its_code(localstripe_url: str) -> None:
    customer, method = card_on_customer(stripe_for(localstripe_url), "4000000000000341")
    outcome = gateway(localstripe_url).charge(charge_request(customer, method, "pay_gw_decl"))
    assert outcome.status == "failed"
    assert outcome.failure is not None
    assert outcome.failure.code == "card_declined"
    assert outcome.failure.message == "Your card was declined."


def test_a_card_needing_authentication_fails_as_authentication_required(
    localstripe_url: str,
) -> None:
    customer, method = card_on_customer(stripe_for(localstripe_url), "4000002500003155")
    outcome = gateway(localstripe_url).charge(charge_request(customer, method, "pay_gw_3ds"))
    assert outcome.status == "failed"
    assert outcome.payment_intent_id is not None
    assert outcome.failure is not None
    assert (outcome.failure.code, outcome.failure.decline_code) == (
        "authentication_required",
        "authentication_required",
    )


def test_intents_are_found_by_our_metadata_and_refunds_are_capped(localstripe_url: str) -> None:
    customer, method = card_on_customer(stripe_for(localstripe_url), "4242424242424242")
    gw = gateway(localstripe_url)
    outcome = gw.charge(charge_request(customer, method, "pay_gw_find"))
    found = gw.find_intents_by_metadata("payment_id", "pay_gw_find", None)
    assert [intent["id"] for intent in found] == [outcome.payment_intent_id]
    assert gw.find_intents_by_metadata("payment_id", "pay_gw_nothing", None) == []
    assert outcome.payment_intent_id is not None
    refund = gw.refund(outcome.payment_intent_id, 1000, None, "ref_gw_1", {"payment_id": "x"})
    assert (refund.amount, refund.status) == (1000, "succeeded")
    retrieved = gw.retrieve_intent(outcome.payment_intent_id, None)
    assert retrieved["status"] == "succeeded"


def test_on_a_connected_account_the_header_and_application_fee_are_sent() -> None:
    with stripe_recorder() as stripe:
        stripe.reply(
            200,
            {
                "id": "pi_rec_1",
                "object": "payment_intent",
                "status": "succeeded",
                "amount": 2500,
                "amount_received": 2500,
                "latest_charge": "ch_rec_1",
                "metadata": {"payment_id": "pay_rec_1"},
            },
        )
        outcome = gateway(stripe.url).charge(
            charge_request(
                "cus_1",
                "pm_1",
                "pay_rec_1",
                stripe_account_id="acct_123",
                application_fee_amount=125,
            )
        )
        assert (outcome.status, outcome.payment_intent_id, outcome.charge_id) == (
            "succeeded",
            "pi_rec_1",
            "ch_rec_1",
        )
        [sent] = stripe.requests
    assert (sent.method, sent.path) == ("POST", "/v1/payment_intents")
    assert sent.headers["stripe-account"] == "acct_123"
    assert sent.headers["idempotency-key"] == "pay_rec_1"
    # The API version is ours, not whatever the installed stripe-python pins.
    assert sent.headers["stripe-version"] == "2026-10-28.endive"
    assert sent.form == {
        "amount": "2500",
        "currency": "usd",
        "customer": "cus_1",
        "payment_method": "pm_1",
        "confirm": "true",
        "off_session": "true",
        "payment_method_types[0]": "card",
        "application_fee_amount": "125",
        "metadata[community_id]": "com_1",
        "metadata[subscription_id]": "sub_1",
        "metadata[payment_id]": "pay_rec_1",
    }


def test_on_the_platform_account_no_header_and_no_fee_are_sent() -> None:
    with stripe_recorder() as stripe:
        stripe.reply(200, {"id": "pi_rec_2", "object": "payment_intent", "status": "succeeded"})
        gateway(stripe.url).charge(charge_request("cus_1", "pm_1", "pay_rec_2"))
        [sent] = stripe.requests
    assert "stripe-account" not in sent.headers
    assert "application_fee_amount" not in sent.form


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, "rate_limit_error"), (500, "api_error"), (401, "authentication_error")],
)
def test_transient_and_server_errors_are_unavailable(status: int, error_type: str) -> None:
    with stripe_recorder() as stripe:
        for _ in range(3):  # the client's own network retries (same idempotency key)
            stripe.reply(status, {"error": {"type": error_type, "message": "nope"}})
        with pytest.raises(Unavailable):
            gateway(stripe.url).charge(charge_request("cus_1", "pm_1", "pay_rec_3"))
        assert {r.headers["idempotency-key"] for r in stripe.requests} == {"pay_rec_3"}


def test_a_connection_failure_is_unavailable() -> None:
    with stripe_recorder() as stripe:
        url = stripe.url
    with pytest.raises(Unavailable):
        gateway(url).charge(charge_request("cus_1", "pm_1", "pay_rec_4"))


def test_a_refund_stripe_refuses_is_a_400_naming_amount() -> None:
    with stripe_recorder() as stripe:
        stripe.reply(
            400,
            {"error": {"type": "invalid_request_error", "message": "Amount too large"}},
        )
        with pytest.raises(InvalidRequest) as raised:
            gateway(stripe.url).refund("pi_1", 99999, "acct_9", "ref_1", {"payment_id": "pay_1"})
        [sent] = stripe.requests
    assert raised.value.details[0].field == "amount"
    assert sent.headers["stripe-account"] == "acct_9"
    assert sent.headers["idempotency-key"] == "ref_1"
    assert sent.form["amount"] == "99999"


def test_an_on_session_charge_asks_for_manual_confirmation_and_answers_the_client_secret() -> None:
    """The pay page's charge: no off_session; Stripe's manual confirmation (which
    stripe.handleCardAction needs); requires_action answers the secret for Stripe.js, and
    confirm_intent finishes it."""
    with stripe_recorder() as stripe:
        stripe.reply(
            200,
            {
                "id": "pi_rec_3",
                "object": "payment_intent",
                "status": "requires_action",
                "client_secret": "pi_rec_3_secret_abc",
                "metadata": {"payment_id": "pay_rec_3"},
            },
        )
        stripe.reply(
            200,
            {
                "id": "pi_rec_3",
                "object": "payment_intent",
                "status": "succeeded",
                "amount": 2500,
                "amount_received": 2500,
                "latest_charge": "ch_rec_3",
            },
        )
        settings = replace(
            Settings.from_env({"BILLING_STAGE": "test", "STRIPE_API_BASE": stripe.url}),
            stripe_manual_confirmation=True,
        )
        real_stripe = StripePaymentGateway(settings, SecretsProvider(settings))
        outcome = real_stripe.charge(charge_request("cus_1", "pm_1", "pay_rec_3", on_session=True))
        assert (outcome.status, outcome.client_secret) == ("requires_action", "pi_rec_3_secret_abc")
        confirmed = real_stripe.confirm_intent("pi_rec_3", None)
        assert confirmed["status"] == "succeeded"
        created, confirm = stripe.requests
    assert "off_session" not in created.form
    # Cards only: without the list Stripe asks for a `return_url` when the Dashboard enables a
    # payment method that may redirect (confirm=true on the server).
    assert created.form["payment_method_types[0]"] == "card"
    assert "payment_method_types[1]" not in created.form
    assert "automatic_payment_methods[enabled]" not in created.form
    assert created.form["confirmation_method"] == "manual"
    assert created.form["confirm"] == "true"
    assert (confirm.method, confirm.path) == ("POST", "/v1/payment_intents/pi_rec_3/confirm")


def test_on_a_connected_account_the_pay_pages_manual_confirmation_stays_on_that_account() -> None:
    """Real Stripe's order for the pay page on a community's account: create (manual
    confirmation, on session, our fee, our idempotency key), then, after Stripe.js's
    handleCardAction, read the intent (`requires_confirmation`) and confirm it; each request on
    the connected account, or Stripe would not find the intent."""
    with stripe_recorder() as stripe:
        stripe.reply(
            200,
            {
                "id": "pi_rec_5",
                "object": "payment_intent",
                "status": "requires_action",
                "client_secret": "pi_rec_5_secret_xyz",
            },
        )
        stripe.reply(
            200, {"id": "pi_rec_5", "object": "payment_intent", "status": "requires_confirmation"}
        )
        stripe.reply(
            200,
            {
                "id": "pi_rec_5",
                "object": "payment_intent",
                "status": "succeeded",
                "amount": 2500,
                "amount_received": 2500,
                "latest_charge": "ch_rec_5",
            },
        )
        settings = replace(
            Settings.from_env({"BILLING_STAGE": "test", "STRIPE_API_BASE": stripe.url}),
            stripe_manual_confirmation=True,
        )
        real_stripe = StripePaymentGateway(settings, SecretsProvider(settings))
        outcome = real_stripe.charge(
            charge_request(
                "cus_1",
                "pm_1",
                "pay_rec_5",
                on_session=True,
                stripe_account_id="acct_club",
                application_fee_amount=150,
            )
        )
        assert (outcome.status, outcome.client_secret) == ("requires_action", "pi_rec_5_secret_xyz")
        authenticated = real_stripe.retrieve_intent("pi_rec_5", "acct_club")
        assert authenticated["status"] == "requires_confirmation"
        assert real_stripe.confirm_intent("pi_rec_5", "acct_club")["status"] == "succeeded"
        created, retrieved, confirmed = stripe.requests
    assert {r.headers["stripe-account"] for r in stripe.requests} == {"acct_club"}
    assert created.headers["idempotency-key"] == "pay_rec_5"
    assert (created.form["confirmation_method"], created.form["confirm"]) == ("manual", "true")
    assert created.form["application_fee_amount"] == "150"
    assert "off_session" not in created.form
    # Cards only: without the list Stripe asks for a `return_url` when the Dashboard enables a
    # payment method that may redirect (confirm=true on the server).
    assert created.form["payment_method_types[0]"] == "card"
    assert "payment_method_types[1]" not in created.form
    assert "automatic_payment_methods[enabled]" not in created.form
    assert (retrieved.method, retrieved.path) == ("GET", "/v1/payment_intents/pi_rec_5")
    assert (confirmed.method, confirmed.path) == ("POST", "/v1/payment_intents/pi_rec_5/confirm")


def test_on_localstripe_an_on_session_charge_needing_authentication_answers_its_secret(
    localstripe_url: str,
) -> None:
    client = stripe_for(localstripe_url)
    customer, method = card_on_customer(client, "4000002500003155")
    outcome = gateway(localstripe_url).charge(
        charge_request(customer, method, "pay_gw_on_session", on_session=True)
    )
    assert outcome.status == "requires_action"
    assert outcome.client_secret and outcome.payment_intent_id
    assert outcome.client_secret.startswith(outcome.payment_intent_id)
