"""Stripe webhook events: signature verification and the Events API.

Verification uses the stripe library on the exact bytes received; stripe is imported on first
use only (it costs ~300 ms at cold start). Every secret configured for the endpoint is tried,
so a secret can be rotated without refusing events signed with the previous one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.stripe.client import request_options
from chalicelib.adapters.stripe.payments import stripe_failure
from chalicelib.domain.errors import InvalidRequest, Unavailable

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
# Stripe's ids are at most 255 characters; longer ones cannot be keys of our records
# (DynamoDB: 2048 bytes for a partition key, 1024 for a sort key).
MAX_ID_CHARS = 255
EVENTS_PAGE_SIZE = 100


def verify_event(
    raw_body: bytes, signature: str | None, secrets: tuple[str, ...]
) -> dict[str, Any]:
    """The event in `raw_body` if one of `secrets` signed it within the tolerance; else 400.

    The checks run in Stripe's order: header present and well formed, a v1 signature matching
    one secret, timestamp within 300 s; then the body must be a JSON event (id, type, data.object).
    """
    import stripe

    if not signature:
        raise _invalid(SIGNATURE_HEADER, "The Stripe-Signature header is missing.")
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("body", "The body is not UTF-8.") from None
    last_error = "no webhook secret is configured"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as error:
            last_error = str(error)
            continue
        return parse_event(text)
    raise _invalid(SIGNATURE_HEADER, f"The signature does not verify: {last_error}")


def parse_event(text: str) -> dict[str, Any]:
    """A Stripe event object from JSON text; 400 naming what is missing."""
    try:
        event = json.loads(text)
    except ValueError:
        raise _invalid("body", "The body is not valid JSON.") from None
    except RecursionError:
        raise _invalid("body", "The body is nested too deeply.") from None
    if not isinstance(event, dict):
        raise _invalid("body", "The body must be a JSON object.")
    for name in ("id", "type"):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise _invalid(name, f"The event has no {name}.")
        if len(value) > MAX_ID_CHARS:
            raise _invalid(name, f"The event's {name} is longer than {MAX_ID_CHARS} characters.")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise _invalid("data.object", "The event has no data.object.")
    account = event.get("account")
    if account is not None and not isinstance(account, str):
        raise _invalid("account", "The event's account must be a string.")
    if account is not None and len(account) > MAX_ID_CHARS:
        raise _invalid("account", f"The event's account is longer than {MAX_ID_CHARS} characters.")
    return event


def _invalid(field_name: str, message: str) -> InvalidRequest:
    return InvalidRequest.for_field(field_name, message)


@dataclass(frozen=True)
class EventsPage:
    events: list[dict[str, Any]]
    has_more: bool


class StripeEvents:
    """Stripe's Events API (`GET /v1/events`), for the reconciliation job. An account that
    no longer lets the platform in raises AccountDisconnected; any other failure Unavailable."""

    def __init__(self, client: Any, page_size: int = EVENTS_PAGE_SIZE) -> None:
        self._client = client
        self._page_size = page_size

    def page(
        self, *, created_gte: int, starting_after: str | None, account: str | None
    ) -> EventsPage:
        params: dict[str, Any] = {"limit": self._page_size, "created": {"gte": created_gte}}
        if starting_after:
            params["starting_after"] = starting_after
        import stripe

        try:
            result = self._client.v1.events.list(params, request_options(account))
        except stripe.StripeError as error:
            raise stripe_failure(error, account) from None
        events = [_plain(item) for item in result.data]
        if account:
            # Events read with the Stripe-Account header belong to that account.
            for event in events:
                event.setdefault("account", account)
        return EventsPage(events, bool(result.has_more))

    def pages(self, created_gte: int, account: str | None) -> Iterator[list[dict[str, Any]]]:
        """Every event created at or after `created_gte`, a page at a time, in whatever order
        the server pages (Stripe: newest first; localstripe: oldest first)."""
        starting_after: str | None = None
        while True:
            page = self.page(
                created_gte=created_gte, starting_after=starting_after, account=account
            )
            if page.events:
                yield page.events
            if not page.has_more or not page.events:
                return
            starting_after = str(page.events[-1]["id"])


def _plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as the plain JSON Stripe sent (what a webhook delivery would carry)."""
    result: dict[str, Any] = obj.to_dict()
    return result


def customer_metadata(client: Any, customer_id: str, account: str | None) -> dict[str, str]:
    """The metadata of a Stripe customer (ours carry community_id and profile_id); empty for
    a customer Stripe does not know. Stripe being unreachable is transient (Unavailable)."""
    import stripe

    try:
        customer = client.v1.customers.retrieve(customer_id, options=request_options(account))
    except stripe.InvalidRequestError:
        return {}
    except stripe.StripeError as error:
        raise Unavailable(f"Stripe is unavailable: {type(error).__name__}") from None
    metadata = _plain(customer).get("metadata") or {}
    return {str(k): str(v) for k, v in metadata.items()}
