"""The currencies we charge in: ISO 4217 code, minor-unit exponent and Stripe's minimum charge.

Source: Stripe's "Supported currencies" page (docs.stripe.com/currencies): the zero-decimal
and three-decimal lists and the table of minimum charge amounts. We accept only currencies
whose minimum we know, because no charge below it may ever be sent (Stripe refuses it with
`amount_too_small`, and a renewal that can never succeed would cancel a paying customer).
Stripe publishes no minimum for the three-decimal currencies and KRW; theirs below is our own,
chosen at or above the equivalent of USD 0.50 at end-2026 rates (marked "ours").

Three-decimal currencies: Stripe wants amounts whose last digit is 0 (`charge_step` 10). Prices
and fees entered in them must be multiples of 10; amounts we compute (prorations, plan-change
differences and credit) are rounded half up to a multiple of 10 (`round_to_step`).
Adding a currency is one row here.

Maximum: Stripe takes at most eight digits of minor units in one charge (99,999,999: 999,999.99
USD, 99,999,999 JPY) and refuses more with `amount_too_large`; in three-decimal currencies the
largest amount ending in 0 (99,999,990). No price, fee or charge above it is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain.errors import InvalidRequest

# Stripe's largest charge: eight digits of minor units (its PaymentIntent `amount`).
STRIPE_MAXIMUM_AMOUNT = 99_999_999


@dataclass(frozen=True)
class Currency:
    code: str  # lowercase ISO 4217, as Stripe takes it
    exponent: int  # digits after the decimal point: JPY 0, USD 2, KWD 3
    minimum_charge: int  # in minor units: Stripe refuses smaller charges

    @property
    def charge_step(self) -> int:
        """Every amount sent to Stripe is a multiple of this (10 for three-decimal ones)."""
        return 10 if self.exponent == 3 else 1

    @property
    def maximum_charge(self) -> int:
        """The largest amount one Stripe charge takes (Stripe refuses more)."""
        return STRIPE_MAXIMUM_AMOUNT // self.charge_step * self.charge_step

    def format(self, amount: int, *, thousands: bool = False) -> str:
        """`amount` minor units in major units with the currency's own decimals: "0.17 USD",
        "500 JPY", "-1.250 KWD" (`thousands`: "1,234.50 USD")."""
        sign = "-" if amount < 0 else ""
        whole, minor = divmod(abs(amount), 10**self.exponent)
        units = f"{whole:,}" if thousands else str(whole)
        digits = f"{units}.{minor:0{self.exponent}d}" if self.exponent else units
        return f"{sign}{digits} {self.code.upper()}"


def _table(*rows: tuple[str, int, int]) -> dict[str, Currency]:
    return {code: Currency(code, exponent, minimum) for code, exponent, minimum in rows}


CURRENCIES: dict[str, Currency] = _table(
    # Stripe's table of minimum charge amounts
    ("usd", 2, 50),
    ("aed", 2, 200),
    ("aud", 2, 50),
    ("bgn", 2, 100),
    ("brl", 2, 50),
    ("cad", 2, 50),
    ("chf", 2, 50),
    ("czk", 2, 1500),
    ("dkk", 2, 250),
    ("eur", 2, 50),
    ("gbp", 2, 30),
    ("hkd", 2, 400),
    ("huf", 2, 17500),
    ("inr", 2, 50),
    ("jpy", 0, 50),
    ("mxn", 2, 1000),
    ("myr", 2, 200),
    ("nok", 2, 300),
    ("nzd", 2, 50),
    ("pln", 2, 200),
    ("ron", 2, 200),
    ("sek", 2, 300),
    ("sgd", 2, 50),
    ("thb", 2, 1000),
    # ours: no minimum published by Stripe
    ("krw", 0, 800),
    ("bhd", 3, 200),
    ("jod", 3, 400),
    ("kwd", 3, 200),
    ("omr", 3, 200),
    ("tnd", 3, 2000),
)


def currency(code: str) -> Currency:
    """The currency `code` names (a stored, already validated code)."""
    try:
        return CURRENCIES[code]
    except KeyError:
        raise ValueError(f"unsupported currency {code!r}") from None


def supported_currency(code: str, field_name: str = "currency") -> Currency:
    """The currency `code` names, or 400 naming `field_name` when we do not charge in it."""
    found = CURRENCIES.get(code)
    if found is None:
        raise InvalidRequest.for_field(
            field_name,
            f"{code!r} is not a currency we charge in; use one of {', '.join(sorted(CURRENCIES))}.",
        )
    return found


def ensure_chargeable_amount(code: str, amount: int, field_name: str) -> None:
    """An amount entered in `code`: three-decimal currencies need a multiple of 10."""
    step = currency(code).charge_step
    if amount % step:
        raise InvalidRequest.for_field(
            field_name, f"Amounts in {code.upper()} end in 0 (a multiple of {step})."
        )


def ensure_within_maximum(code: str, amount: int, field_name: str, what: str) -> None:
    """400 naming `field_name` when `amount` is more than one Stripe charge takes (Stripe would
    refuse it with `amount_too_large`, every time); `what` names the amount in the message."""
    chargeable = currency(code)
    if amount > chargeable.maximum_charge:
        raise InvalidRequest.for_field(
            field_name,
            f"{what} ({chargeable.format(amount, thousands=True)}) is more than Stripe takes in "
            f"one charge ({chargeable.format(chargeable.maximum_charge, thousands=True)}).",
        )


def round_to_step(amount: int, code: str) -> int:
    """A computed non-negative amount rounded half up to the currency's charge step."""
    step = currency(code).charge_step
    return (2 * amount + step) // (2 * step) * step
