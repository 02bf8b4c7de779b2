"""The text the emails share: moments (`when`: `February 22, 2026 at 12:00 UTC`, API.md) and
the order summary of a payment (the receipt of a new member, the dunning "payment received"
email), amounts with the currency's own decimals (JPY 0, USD 2, KWD 3)."""

from __future__ import annotations

from datetime import datetime

from chalicelib.domain.currencies import currency
from chalicelib.domain.payments import Payment


def when(moment: datetime) -> str:
    return moment.strftime("%B %-d, %Y at %H:%M UTC")


def order_lines(payment: Payment) -> str:
    """One line per charged line: `  <description>: <quantity> x <unit> = <amount>`; the
    credit applied reads `  <description>: <amount>`."""
    money = currency(payment.currency).format
    rendered = []
    for line in payment.lines:
        if line.kind == "credit":
            rendered.append(f"  {line.description}: {money(line.amount)}")
        else:
            rendered.append(
                f"  {line.description}: {line.quantity} x {money(line.unit_amount)}"
                f" = {money(line.amount)}"
            )
    return "\n".join(rendered)


def order_summary(payment: Payment) -> str:
    """The lines, then the subtotal and credit (when credit was applied) and the total."""
    money = currency(payment.currency).format
    parts = [order_lines(payment), ""]
    if payment.credit_applied:
        parts.append(f"Subtotal: {money(payment.subtotal)}")
        parts.append(f"Credit applied: {money(-payment.credit_applied)}")
    parts.append(f"Total: {money(payment.total)}")
    return "\n".join(parts)


def card_text(payment: Payment) -> str:
    """`Visa ending in 4242`, or `the card on file` when the payment recorded none."""
    method = payment.payment_method
    if method is None or not method.last4:
        return "the card on file"
    brand = (method.brand or method.type or "card").replace("_", " ")
    brand = "American Express" if brand == "amex" else brand.title()
    return f"{brand} ending in {method.last4}"
