"""The local stack's localstripe (infra/local/localstripe_server.py): no pickle of the store
after every write, listings by kind that answer as localstripe's walk of the whole store."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from localstripe import resources

from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.adapters.stripe.payments import StripePaymentGateway
from chalicelib.config import Settings
from infra.local.localstripe_server import in_memory_store
from infra.local.stack import standalone_localstripe
from tests.support.localstripe import card_on_customer


class Thing(resources.StripeObject):  # type: ignore[misc]
    object = "thing"


class Other(resources.StripeObject):  # type: ignore[misc]
    object = "other"


@pytest.fixture
def indexed_store() -> Iterator[Any]:
    store = resources.store
    before = dict(store)
    undo = in_memory_store()
    try:
        yield store
    finally:
        undo()
        dict.clear(store)
        dict.update(store, before)


def _walk(store: Any, kind: str) -> list[Any]:
    """localstripe's own listing: every value whose key starts with the kind."""
    return [value for key, value in store.items() if key.startswith(kind + ":")]


def test_listings_by_kind_are_the_walk_of_the_whole_store(indexed_store: Any) -> None:
    store = indexed_store
    rng = random.Random(7)
    keys = [f"{kind}:{kind[:2]}_{n}" for kind in ("thing", "other") for n in range(15)]
    for step in range(300):
        key = rng.choice(keys)
        action = rng.random()
        if action < 0.6:
            store[key] = (key, step)  # a new object, or the same id saved again
        elif key in store:
            del store[key]
        if step == 150:
            store.clear()
        assert Thing._api_list_all("/v1/things")._list == _walk(store, "thing"), step
        assert Other._api_list_all("/v1/others")._list == _walk(store, "other"), step


def test_the_store_is_not_written_to_disk(indexed_store: Any) -> None:
    store = indexed_store
    assert type(store).dump_to_disk is not resources.Store.dump_to_disk
    store["thing:th_1"] = "kept in memory"  # would have pickled the whole store
    assert store["thing:th_1"] == "kept in memory"


def test_payments_and_refunds_through_the_launcher() -> None:
    with standalone_localstripe() as url:
        client = stripe.StripeClient("sk_test_launcher", base_addresses={"api": url})
        customer, method = card_on_customer(client, "4242424242424242")
        intents = [
            client.v1.payment_intents.create(
                params={
                    "amount": 1000 + n,
                    "currency": "usd",
                    "customer": customer,
                    "payment_method": method,
                    "confirm": True,
                    "off_session": True,
                }
            )
            for n in range(3)
        ]
        assert [intent.status for intent in intents] == ["succeeded"] * 3
        refund = client.v1.refunds.create(params={"payment_intent": intents[1].id, "amount": 300})
        charge = client.v1.charges.retrieve(str(refund.charge))
        assert (charge.amount_refunded, charge.refunded) == (300, False)
        refunds = client.v1.refunds.list(params={"payment_intent": intents[1].id})
        assert [refund.amount for refund in refunds.data] == [300]
        listed = client.v1.payment_intents.list(params={"limit": 10})
        assert sorted(intent.id for intent in listed.data) == sorted(i.id for i in intents)


def test_payment_intents_are_found_by_metadata_through_the_search_api() -> None:
    """The adapter's way to find the intent of a charge whose answer was lost: Stripe's search
    (localstripe has none; listing gave up after LIST_MAX_PAGES pages of older intents)."""
    with standalone_localstripe() as url:
        client = stripe.StripeClient("sk_test_search", base_addresses={"api": url})
        customer, method = card_on_customer(client, "4242424242424242")
        made = {
            payment_id: client.v1.payment_intents.create(
                params={
                    "amount": 1000,
                    "currency": "usd",
                    "customer": customer,
                    "payment_method": method,
                    "metadata": {"payment_id": payment_id},
                }
            ).id
            for payment_id in ("pay_a", "pay_b", "pay_c")
        }
        settings = Settings.from_env({"BILLING_STAGE": "test", "STRIPE_API_BASE": url})
        payments = StripePaymentGateway(settings, SecretsProvider(settings))
        for payment_id, intent_id in made.items():
            found = payments.find_intents_by_metadata("payment_id", payment_id, None)
            assert [intent["id"] for intent in found] == [intent_id]
        assert payments.find_intents_by_metadata("payment_id", "pay_none", None) == []
        answer = client.v1.payment_intents.search(
            params={"query": "metadata['payment_id']:'pay_b'"}
        )
        assert [intent.id for intent in answer.data] == [made["pay_b"]]
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.payment_intents.search(params={"query": "amount>100"})
