"""Violations that are documented product bugs (issue 11), gated so `make test` stays green.

Each entry matches one precise shape of violation and names its issue 11 item and its
regression test (tests/soak/test_soak_regressions.py, `xfail(strict=True)` until fixed).
Anything that matches no entry fails the run. Gated violations are counted and reported.
"""

from __future__ import annotations

from typing import Protocol

from tests.soak.invariants import Violation


class Sequence(Protocol):
    refund_faulted: set[str]  # payments whose refund met a Stripe fault
    big_list_calls: set[str]  # "METHOD path" of this step's requests with a big member list
    big_list_payments: set[str]  # payments of subscriptions a big member list was added to


def gate(violation: Violation, sequence: Sequence) -> str | None:
    """The issue 11 item this violation is an instance of, or None (a real failure)."""
    if violation.invariant == "intent-open" and "left requires_action" in violation.message:
        # test_a_card_needing_authentication_leaves_no_open_payment_intent
        return "issue 11 item 1: a card needing authentication leaves the PaymentIntent open"
    if violation.invariant == "refunds-equal" and any(
        payment_id in violation.subject for payment_id in sequence.refund_faulted
    ):
        # test_a_refund_stripe_never_made_is_not_kept_in_the_ledger
        return "issue 11 item 2: a refund Stripe failed keeps its reservation in the ledger"
    if violation.invariant == "stripe-minimum":
        # test_no_charge_is_sent_under_stripes_minimum
        return "issue 11 item 3: charges under Stripe's minimum are sent"
    if violation.invariant == "no-500" and any(
        violation.message.startswith(f"{call} ->") for call in sequence.big_list_calls
    ):
        # test_a_subscription_with_100_members_is_created
        return "issue 11 item 4: a member list of 100 overflows one 100-item transaction (500)"
    if violation.invariant in ("nothing-pending", "ledger=stripe") and any(
        payment_id in violation.subject for payment_id in sequence.big_list_payments
    ):
        # test_adding_100_members_leaves_no_charge_pending
        return (
            "issue 11 item 4: adding 100 members charges, then its resolution overflows one "
            "transaction: the payment stays pending"
        )
    return None
