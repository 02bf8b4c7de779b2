"""Card declines: which ones stop automatic retries, and what each means in plain words.

Pure. Stripe reports a declined charge as `code` (e.g. `card_declined`, `expired_card`,
`incorrect_cvc`, `authentication_required`) and, for `card_declined`, the issuer's
`decline_code` (docs.stripe.com/declines/codes).

Hard declines (`is_hard_decline`): the issuer says this card must not be charged again: it is
reported stolen or lost, the bank asks the merchant to take it (`pickup_card`), suspects fraud,
or the cardholder revoked the authorisation or stopped payments. Retrying such a card cannot
succeed, and the card networks count repeated attempts on these "do not retry" answers against
the merchant (Visa's category 1, Mastercard's merchant advice "do not try again"). So after a
hard decline no automatic retry is scheduled; the subscription stays `failed_payment` until its
grace ends, and the owner can still pay with another card through the pay-now link.
Soft declines (insufficient funds, a generic decline, an expired card the card updater may
renew, a processing error) keep the plan's retry schedule.

The plain words (`decline_reason`) are written for the owner. For stolen, lost, pick-up and
fraud codes Stripe asks that the exact reason is not told to the customer, so they read as a
generic "your bank declined and asked us not to try this card again".
"""

from __future__ import annotations

# Issuer answers after which the same card is never retried automatically.
HARD_DECLINE_CODES = frozenset(
    {
        "stolen_card",
        "lost_card",
        "pickup_card",
        "fraudulent",
        "restricted_card",
        "security_violation",
        "merchant_blacklist",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "stop_payment_order",
        "invalid_account",
        "new_account_information_available",
    }
)

_DO_NOT_RETRY = (
    "Your bank declined the payment and asked us not to try this card again. "
    "Please pay with another card."
)

# decline_code (or code, when Stripe gives no decline_code) -> the owner's plain words.
_REASONS: dict[str, str] = {
    "insufficient_funds": "The card has insufficient funds.",
    "card_declined": "Your bank declined the payment without giving a reason.",
    "generic_decline": "Your bank declined the payment without giving a reason.",
    "do_not_honor": "Your bank declined the payment without giving a reason.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": "The card's security code (CVC) was not accepted.",
    "invalid_cvc": "The card's security code (CVC) was not accepted.",
    "incorrect_number": "The card number was not accepted.",
    "invalid_expiry_month": "The card's expiry date was not accepted.",
    "invalid_expiry_year": "The card's expiry date was not accepted.",
    "authentication_required": (
        "Your bank wants you to confirm this payment yourself (for example in its app), "
        "which we cannot do while you are away."
    ),
    "card_velocity_exceeded": "The card has reached its spending limit.",
    "withdrawal_count_limit_exceeded": "The card has reached its spending limit.",
    "card_not_supported": "The card does not support this kind of payment.",
    "currency_not_supported": "The card does not support payments in this currency.",
    "processing_error": "The payment could not be processed because of an error at the bank.",
    "issuer_not_available": "Your bank could not be reached to approve the payment.",
    "try_again_later": "Your bank could not approve the payment right now.",
    "not_attempted": "The payment could not be made.",
    # Charges never sent to Stripe (domain/payments.py): no bank was asked.
    "card_detached": "The card was removed from your account, so it can no longer be charged.",
    "no_card_on_account": "We have no card of yours on file for this membership.",
    "account_disconnected": (
        "The community's payment account is not connected right now, so nothing was charged."
    ),
    **{code: _DO_NOT_RETRY for code in HARD_DECLINE_CODES},
}
_UNKNOWN = "Your bank declined the payment."


# Failures we decide without Stripe because the card cannot be charged at all (domain/payments.py):
# retrying the same card cannot help; the owner pays with another one.
CARD_UNUSABLE_CODES = frozenset({"card_detached", "no_card_on_account"})


def needs_another_card(code: str | None) -> bool:
    """Whether no retry of the subscription's card can succeed (the card is gone)."""
    return (code or "") in CARD_UNUSABLE_CODES


# Failures of the community's side (its Stripe account disconnected the platform): no card the
# owner gives can be charged until the community reconnects, so the owner is asked for nothing.
COMMUNITY_SIDE_CODES = frozenset({"account_disconnected"})


def waits_on_the_community(code: str | None) -> bool:
    """Whether only the community can clear this failure (the pay-now page cannot)."""
    return (code or "") in COMMUNITY_SIDE_CODES


def is_hard_decline(code: str | None, decline_code: str | None) -> bool:
    """Whether this failure stops automatic retries of the card (see the module docstring)."""
    return (decline_code or "") in HARD_DECLINE_CODES or (code or "") in HARD_DECLINE_CODES


def decline_reason(code: str | None, decline_code: str | None) -> str:
    """The failure in plain words for the owner: the issuer's decline code first (it is the
    more precise), then Stripe's error code, else a generic sentence."""
    for key in (decline_code, code):
        if key and key in _REASONS:
            return _REASONS[key]
    return _UNKNOWN
