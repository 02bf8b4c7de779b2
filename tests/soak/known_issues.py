"""Violations that are documented product bugs (issue 11), gated so `make test` stays green.

Each entry matches one precise shape of violation and names its issue 11 item and its
regression test (tests/soak/test_soak_regressions.py, `xfail(strict=True)` until fixed).
Anything that matches no entry fails the run. Gated violations are counted and reported.
"""

from __future__ import annotations

from typing import Any, Protocol

from tests.soak.invariants import Violation


class Sequence(Protocol):
    refund_faulted: set[str]


def gate(violation: Violation, sequence: Any) -> str | None:
    """The issue 11 item this violation is an instance of, or None (a real failure)."""
    if violation.invariant == "intent-open" and "left requires_action" in violation.message:
        # test_a_card_needing_authentication_leaves_no_open_payment_intent
        return "issue 11 item 1: a card needing authentication leaves the PaymentIntent open"
    if violation.invariant == "refunds-equal" and any(
        payment_id in violation.subject for payment_id in sequence.refund_faulted
    ):
        # test_a_refund_stripe_never_made_is_not_kept_in_the_ledger
        return "issue 11 item 2: a refund Stripe failed keeps its reservation in the ledger"
    return None
