"""Stripe customers, their cards and SetupIntents.

Every call takes the connected account it runs on (`None`: the platform's own account); a
connected account goes in the Stripe-Account header through `request_options`. Stripe errors
become domain errors naming the request field they concern. `stripe` is imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.adapters.stripe.client import request_options, stripe_client
from chalicelib.config import Settings
from chalicelib.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    RateLimited,
    Unavailable,
)
from chalicelib.domain.payments import PaymentMethodSummary

PM_FIELD = "stripe_payment_method_id"


@dataclass(frozen=True)
class Card:
    id: str
    type: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    customer: str | None
    detached: bool = False  # Stripe said `payment_method.detached` (webhook, card snapshot)

    def summary(self) -> PaymentMethodSummary:
        """The card as a payment records it."""
        return PaymentMethodSummary(self.type, self.brand, self.last4)

    def view(self) -> dict[str, Any]:
        """The card as a subscription shows it (API.md `payment_method`)."""
        return {
            "id": self.id,
            "brand": self.brand,
            "last4": self.last4,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "detached": self.detached,
        }


def card_from_stripe(pm: Any) -> Card:
    data = pm.to_dict() if hasattr(pm, "to_dict") else dict(pm)
    card = data.get("card") or {}
    customer = data.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return Card(
        id=data["id"],
        type=data.get("type", "card"),
        brand=card.get("brand"),
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        customer=customer,
    )


@contextmanager
def stripe_errors(field: str, missing: str = "invalid") -> Iterator[None]:
    """Map Stripe's exceptions; `missing` says whether an unknown object is a 400 or a 404."""
    import stripe

    try:
        yield
    except stripe.CardError as error:
        message = error.user_message or "The card was declined."
        raise InvalidRequest.for_field(field, message) from None
    except stripe.InvalidRequestError as error:
        if error.code == "resource_missing" and missing == "not_found":
            raise NotFound("No such payment method.") from None
        message = error.user_message or "Stripe refused the request."
        raise InvalidRequest.for_field(field, message) from None
    except stripe.RateLimitError:
        raise RateLimited("Stripe is rate limiting requests; retry shortly.") from None
    except stripe.PermissionError:
        raise Conflict("The community's Stripe account does not allow this request.") from None
    except stripe.IdempotencyError:
        raise Conflict(
            "Stripe holds an earlier request with this idempotency key and other details; "
            "retry in 24 hours."
        ) from None
    except stripe.StripeError:  # unreachable, or an answer we do not know: never a 500
        raise Unavailable("Stripe is not reachable right now; retry shortly.") from None


class StripeCustomers:
    def __init__(self, settings: Settings, secrets: SecretsProvider) -> None:
        self._settings = settings
        self._secrets = secrets

    def _client(self) -> Any:
        return stripe_client(self._settings, self._secrets.get().stripe_secret_key)

    def community_of_customer(self, customer_id: str) -> str | None:
        """The community our platform-account customer belongs to (its metadata), if ours."""
        from chalicelib.adapters.stripe.events import customer_metadata

        return customer_metadata(self._client(), customer_id, None).get("community_id") or None

    def create_customer(
        self,
        account: str | None,
        *,
        name: str,
        email: str | None,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> str:
        params: dict[str, Any] = {"name": name, "metadata": metadata}
        if email:
            params["email"] = email
        with stripe_errors("profile"):
            customer = self._client().v1.customers.create(
                params, request_options(account, idempotency_key=idempotency_key)
            )
        return str(customer.id)

    def update_customer(
        self, account: str | None, customer_id: str, *, name: str, email: str | None
    ) -> None:
        """Set the customer's name and email (Stripe mails receipts and authentication
        requests there). A customer Stripe no longer has: NotFound."""
        params: dict[str, Any] = {"name": name, "email": email or ""}
        with stripe_errors("email", missing="not_found"):
            self._client().v1.customers.update(customer_id, params, request_options(account))

    def attach(self, account: str | None, customer_id: str, payment_method_id: str) -> Card:
        with stripe_errors(PM_FIELD):
            pm = self._client().v1.payment_methods.attach(
                payment_method_id, {"customer": customer_id}, request_options(account)
            )
        return card_from_stripe(pm)

    def retrieve(self, account: str | None, payment_method_id: str) -> Card:
        with stripe_errors(PM_FIELD, missing="not_found"):
            pm = self._client().v1.payment_methods.retrieve(
                payment_method_id, None, request_options(account)
            )
        return card_from_stripe(pm)

    def list_cards(
        self, account: str | None, customer_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Card], bool]:
        """One page of the customer's cards (Stripe's own paging) and whether more follow."""
        params: dict[str, Any] = {"customer": customer_id, "type": "card", "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with stripe_errors("starting_after"):
            page = self._client().v1.payment_methods.list(params, request_options(account))
        return [card_from_stripe(pm) for pm in page.data], bool(page.has_more)

    def detach(self, account: str | None, payment_method_id: str) -> None:
        with stripe_errors(PM_FIELD, missing="not_found"):
            self._client().v1.payment_methods.detach(
                payment_method_id, None, request_options(account)
            )

    def create_setup_intent(
        self, account: str | None, customer_id: str, metadata: dict[str, str]
    ) -> str:
        params: dict[str, Any] = {
            "customer": customer_id,
            "usage": "off_session",
            "payment_method_types": ["card"],
            "metadata": metadata,
        }
        with stripe_errors("profile"):
            intent = self._client().v1.setup_intents.create(params, request_options(account))
        return str(intent.client_secret)
