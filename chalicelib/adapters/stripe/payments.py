"""Stripe payment gateway: off-session PaymentIntents, refunds, and lookups for recovery.

Only this module knows Stripe's payment API. It answers with plain dataclasses:

- `charge(request)` creates and confirms one PaymentIntent (`confirm=True, off_session=True`)
  with `idempotency_key` = our payment id and our ids in `metadata`. An on-session charge
  (`request.on_session`: the customer is on the pay page) is confirmed with the customer
  present instead; when the card asks for authentication it answers `requires_action` with the
  intent's `client_secret` for the page's `stripe.handleCardAction`, and `confirm_intent`
  finishes it on the server afterwards (Stripe's manual confirmation flow). On a community's
  connected account it sends the `Stripe-Account` header and `application_fee_amount` (only
  there). Declines (CardError) and (off session) `requires_action` come back as a failed
  `IntentOutcome`; a 429 (rate limit or `lock_timeout`) raises `StripeRateLimited`: Stripe did
  not act, so the caller may send the same request (same key) later; timeouts, connection and
  API errors raise `Unavailable`: the caller leaves the payment pending for the webhook /
  recovery pass and never sends the charge again.
- `outcome_from_intent(intent)` reads a PaymentIntent (from an API answer or a webhook event).
- `retrieve_intent`, `find_intents_by_metadata` (search on real Stripe; list + filter where the
  search API is missing, as on localstripe), `cancel_intent`, `refund`, `find_refund` (the
  refunds of a PaymentIntent, by our `metadata.refund_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.adapters.stripe.client import request_options, stripe_client
from chalicelib.config import Settings
from chalicelib.domain.errors import (
    AccountDisconnected,
    DomainError,
    InvalidRequest,
    NotFound,
    StripeRateLimited,
    Unavailable,
)
from chalicelib.domain.payment_reports import IntentClaim
from chalicelib.domain.payments import ACCOUNT_DISCONNECTED

IntentStatus = Literal["succeeded", "failed", "pending", "requires_action"]
AUTHENTICATION_REQUIRED = "authentication_required"
# What Stripe says (401 or 403) to a platform a connected account has deauthorized.
_NO_ACCESS_TEXT = "does not have access to account"
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 20


@dataclass(frozen=True)
class ChargeFailure:
    code: str
    decline_code: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "decline_code": self.decline_code, "message": self.message}


@dataclass(frozen=True)
class ChargeRequest:
    payment_id: str
    amount: int
    currency: str
    customer_id: str
    payment_method_id: str
    stripe_account_id: str | None
    application_fee_amount: int
    metadata: Mapping[str, str]
    # The customer is present (the pay page): no off_session, and authentication is theirs.
    on_session: bool = False


@dataclass(frozen=True)
class IntentOutcome:
    """What Stripe did with one payment: succeeded, failed (with why), still pending, or (on
    session only) waiting for the customer's authentication (`client_secret` for Stripe.js)."""

    status: IntentStatus
    payment_intent_id: str | None
    charge_id: str | None
    failure: ChargeFailure | None = None
    amount_received: int | None = None
    client_secret: str | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    amount: int
    status: str  # Stripe's: succeeded | pending | requires_action | failed | canceled

    @property
    def refunded(self) -> bool:
        return self.status == "succeeded"

    @property
    def not_refunded(self) -> bool:
        """Stripe will not refund it (the money stays with the payment)."""
        return self.status in ("failed", "canceled")


def _refund_result(refund: Mapping[str, Any]) -> RefundResult:
    return RefundResult(str(refund["id"]), int(refund["amount"]), str(refund["status"]))


def _id_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get("id")
        return str(found) if found else None
    return str(getattr(value, "id", None) or "") or None


def outcome_from_intent(intent: Mapping[str, Any]) -> IntentOutcome:
    """Map a PaymentIntent (dict) to our outcome. Anything not final stays pending."""
    status = intent.get("status")
    intent_id = _id_of(intent.get("id"))
    charge_id = _id_of(intent.get("latest_charge"))
    if status == "succeeded":
        received = intent.get("amount_received", intent.get("amount"))
        return IntentOutcome("succeeded", intent_id, charge_id, amount_received=int(received or 0))
    if status == "requires_action":
        return IntentOutcome(
            "failed",
            intent_id,
            charge_id,
            ChargeFailure(
                AUTHENTICATION_REQUIRED,
                AUTHENTICATION_REQUIRED,
                "The card needs the customer's authentication; it cannot be charged off-session.",
            ),
        )
    if status in ("requires_payment_method", "canceled"):
        error = intent.get("last_payment_error") or {}
        return IntentOutcome(
            "failed",
            intent_id,
            charge_id or _id_of(error.get("charge")),
            ChargeFailure(
                str(error.get("code") or ("canceled" if status == "canceled" else "card_declined")),
                error.get("decline_code"),
                str(error.get("message") or "The payment was not completed."),
            ),
        )
    return IntentOutcome("pending", intent_id, charge_id)


def intent_claim(intent: Mapping[str, Any], account: str | None) -> IntentClaim:
    """What a PaymentIntent (dict) on `account` says it is (domain/payment_reports.py).
    Stripe shows `application_fee_amount` (null: no fee) and `application` (null: the account
    made it itself) on every PaymentIntent; localstripe shows neither."""
    fee: int | None = None
    if "application_fee_amount" in intent:
        fee = _amount_of(intent.get("application_fee_amount")) or 0
    made_by_a_platform: bool | None = None
    if "application" in intent:
        made_by_a_platform = _id_of(intent.get("application")) is not None
    currency = intent.get("currency")
    return IntentClaim(
        payment_intent_id=_id_of(intent.get("id")),
        account_id=account or None,
        amount=_amount_of(intent.get("amount")),
        currency=currency if isinstance(currency, str) else None,
        application_fee_amount=fee,
        made_by_a_platform=made_by_a_platform,
    )


def _amount_of(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _to_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    converted: dict[str, Any] = obj.to_dict()
    return converted


def rate_limited(error: Any) -> StripeRateLimited:
    """Stripe's 429 (`RateLimitError`: a rate limit, or `lock_timeout` on a busy object)."""
    code = str(getattr(error, "code", None) or "rate_limit")
    return StripeRateLimited(f"Stripe is rate limiting this account ({code}).", code)


def no_access(error: Any, stripe_account_id: str | None) -> AccountDisconnected | None:
    """Stripe's refusal of a call on a connected account that no longer lets the platform in
    (it deauthorized us: 403 PermissionError, or 401 naming the account). Stripe did nothing.
    A 401 that does not name the account is our key's problem, not the account's: None."""
    import stripe

    if not stripe_account_id:
        return None
    refused = isinstance(error, stripe.PermissionError) or (
        isinstance(error, stripe.AuthenticationError) and _NO_ACCESS_TEXT in str(error)
    )
    if not refused:
        return None
    return AccountDisconnected(
        f"Stripe account {stripe_account_id} no longer lets the platform act on it (it "
        "disconnected the platform); nothing was done there."
    )


def stripe_failure(error: Any, stripe_account_id: str | None) -> DomainError:
    """A Stripe failure that is not an answer about the request itself: the account refusing
    us (AccountDisconnected), else a transient failure (Unavailable)."""
    refused = no_access(error, stripe_account_id)
    if refused is not None:
        return refused
    return Unavailable(f"Stripe is unavailable: {type(error).__name__}")


class StripePaymentGateway:
    """`retry_rate_limits=False` (the scheduled worker): stripe-python never sleeps on a 429."""

    def __init__(
        self, settings: Settings, secrets: SecretsProvider, *, retry_rate_limits: bool = True
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._retry_rate_limits = retry_rate_limits

    @property
    def _client(self) -> Any:
        return stripe_client(
            self._settings,
            self._secrets.get().stripe_secret_key,
            retry_rate_limits=self._retry_rate_limits,
        )

    def charge(self, request: ChargeRequest) -> IntentOutcome:
        import stripe

        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency,
            "customer": request.customer_id,
            "payment_method": request.payment_method_id,
            "confirm": True,
            # Cards only, as our SetupIntents save them. Without the list, Stripe (API versions
            # since 2023-08-16) takes the payment methods enabled in the account's Dashboard
            # (a connected account's own settings) and refuses `confirm=true` without a
            # `return_url` when any of them may redirect: every charge would depend on it.
            "payment_method_types": ["card"],
            "metadata": dict(request.metadata),
        }
        if not request.on_session:
            params["off_session"] = True
        elif self._settings.stripe_manual_confirmation:
            # handleCardAction needs manual confirmation (off on localstripe, which refuses the
            # parameter: its Stripe.js stand-in completes the intent and `confirm_intent` then
            # finds it succeeded).
            params["confirmation_method"] = "manual"
        if request.stripe_account_id and request.application_fee_amount > 0:
            params["application_fee_amount"] = request.application_fee_amount
        options = request_options(request.stripe_account_id, idempotency_key=request.payment_id)
        try:
            intent = self._client.v1.payment_intents.create(params=params, options=options)
        except stripe.CardError as error:
            return _declined(error)
        except stripe.IdempotencyError as error:
            # A PaymentIntent with this key already exists: what happened is for recovery to read.
            raise Unavailable(
                f"Stripe reports an earlier request for this payment: {error}"
            ) from None
        except stripe.InvalidRequestError as error:
            if _error_intent(error) is not None:
                return _declined(error)
            return IntentOutcome(
                "failed",
                None,
                None,
                ChargeFailure(
                    str(error.code or "invalid_request"), None, str(error.user_message or error)
                ),
            )
        except stripe.RateLimitError as error:
            raise rate_limited(error) from None
        except stripe.StripeError as error:
            refused = no_access(error, request.stripe_account_id)
            if refused is not None:  # Stripe made no PaymentIntent: a failure, never pending
                return IntentOutcome(
                    "failed",
                    None,
                    None,
                    ChargeFailure(ACCOUNT_DISCONNECTED.code, None, refused.message),
                )
            raise Unavailable(f"Stripe is unavailable: {type(error).__name__}") from None
        answer = _to_dict(intent)
        if request.on_session and answer.get("status") == "requires_action":
            return IntentOutcome(
                "requires_action",
                _id_of(answer.get("id")),
                None,
                client_secret=str(answer.get("client_secret") or ""),
            )
        return outcome_from_intent(answer)

    def confirm_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        """Confirm an on-session intent after the customer's authentication (manual
        confirmation); a decline comes back as the intent it left behind."""
        import stripe

        try:
            intent = self._client.v1.payment_intents.confirm(
                intent_id, options=request_options(stripe_account_id)
            )
        except stripe.CardError as error:
            found = _error_intent(error)
            if found is not None:
                return found
            return self.retrieve_intent(intent_id, stripe_account_id)
        except stripe.InvalidRequestError as error:
            raise InvalidRequest(
                f"PaymentIntent {intent_id} cannot be confirmed: {error.user_message or error}"
            ) from None
        except stripe.StripeError as error:
            raise stripe_failure(error, stripe_account_id) from None
        return _to_dict(intent)

    def retrieve_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        import stripe

        try:
            intent = self._client.v1.payment_intents.retrieve(
                intent_id, options=request_options(stripe_account_id)
            )
        except stripe.InvalidRequestError:
            raise NotFound(f"The Stripe account has no PaymentIntent {intent_id}.") from None
        except stripe.StripeError as error:
            raise stripe_failure(error, stripe_account_id) from None
        return _to_dict(intent)

    def find_intents_by_metadata(
        self, key: str, value: str, stripe_account_id: str | None
    ) -> list[dict[str, Any]]:
        """PaymentIntents whose metadata[key] == value (search; list + filter without search)."""
        import stripe

        options = request_options(stripe_account_id)
        try:
            try:
                result = self._client.v1.payment_intents.search(
                    params={"query": f"metadata['{key}']:'{value}'", "limit": LIST_PAGE_SIZE},
                    options=options,
                )
                return [_to_dict(item) for item in result.data]
            except stripe.InvalidRequestError:
                return self._list_and_filter(key, value, options)
        except stripe.StripeError as error:
            raise stripe_failure(error, stripe_account_id) from None

    def _list_and_filter(
        self, key: str, value: str, options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
        for _ in range(LIST_MAX_PAGES):
            page = self._client.v1.payment_intents.list(params=params, options=options)
            items = [_to_dict(item) for item in page.data]
            found += [i for i in items if (i.get("metadata") or {}).get(key) == value]
            if not page.has_more or not items:
                return found
            params["starting_after"] = items[-1]["id"]
        raise Unavailable("Too many PaymentIntents to list; retry with Stripe's search API.")

    def refund(
        self,
        payment_intent_id: str,
        amount: int,
        stripe_account_id: str | None,
        refund_id: str,
        metadata: Mapping[str, str],
    ) -> RefundResult:
        import stripe

        params = {"payment_intent": payment_intent_id, "amount": amount, "metadata": dict(metadata)}
        options = request_options(stripe_account_id, idempotency_key=refund_id)
        try:
            refund = _to_dict(self._client.v1.refunds.create(params=params, options=options))
        except stripe.InvalidRequestError as error:
            raise InvalidRequest.for_field(
                "amount", f"Stripe refused the refund: {error.user_message or error}"
            ) from None
        except stripe.StripeError as error:
            raise stripe_failure(error, stripe_account_id) from None
        return _refund_result(refund)

    def cancel_intent(self, intent_id: str, stripe_account_id: str | None) -> dict[str, Any]:
        import stripe

        try:
            intent = self._client.v1.payment_intents.cancel(
                intent_id, options=request_options(stripe_account_id)
            )
        except stripe.InvalidRequestError as error:
            raise InvalidRequest(
                f"PaymentIntent {intent_id} cannot be canceled: {error.user_message or error}"
            ) from None
        except stripe.StripeError as error:
            raise stripe_failure(error, stripe_account_id) from None
        return _to_dict(intent)

    def find_refund(
        self, payment_intent_id: str, refund_id: str, amount: int, stripe_account_id: str | None
    ) -> RefundResult | None:
        """Our refund on Stripe (metadata.refund_id, for `amount`: on a connected account the
        owner can refund the charge with our id in the metadata, and that is not ours); a
        succeeded one wins should Stripe hold two (localstripe ignores idempotency keys)."""
        import stripe

        options = request_options(stripe_account_id)
        params: dict[str, Any] = {"payment_intent": payment_intent_id, "limit": LIST_PAGE_SIZE}
        found: list[dict[str, Any]] = []
        try:
            for _ in range(LIST_MAX_PAGES):
                page = self._client.v1.refunds.list(params=params, options=options)
                items = [_to_dict(item) for item in page.data]
                found += [
                    r
                    for r in items
                    if _metadata(r).get("refund_id") == refund_id and r.get("amount") == amount
                ]
                if not page.has_more or not items:
                    break
                params["starting_after"] = items[-1]["id"]
            else:
                raise Unavailable("Too many refunds to list for one PaymentIntent.")
        except stripe.StripeError as error:
            raise stripe_failure(error, stripe_account_id) from None
        if not found:
            return None
        chosen = next((r for r in found if r.get("status") == "succeeded"), found[0])
        return _refund_result(chosen)


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata") or {}
    return metadata if isinstance(metadata, Mapping) else _to_dict(metadata)


def _error_intent(error: Any) -> dict[str, Any] | None:
    body = getattr(error, "json_body", None) or {}
    intent = (body.get("error") or {}).get("payment_intent")
    return intent if isinstance(intent, dict) else None


def _declined(error: Any) -> IntentOutcome:
    body = (getattr(error, "json_body", None) or {}).get("error") or {}
    intent = _error_intent(error) or {}
    return IntentOutcome(
        "failed",
        _id_of(intent.get("id")),
        _id_of(body.get("charge")) or _id_of(intent.get("latest_charge")),
        ChargeFailure(
            str(body.get("code") or getattr(error, "code", None) or "card_declined"),
            body.get("decline_code"),
            str(body.get("message") or getattr(error, "user_message", None) or "Card declined."),
        ),
    )
