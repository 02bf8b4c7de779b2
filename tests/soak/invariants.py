"""The soak's invariants: each a function from what the API and Stripe show to the violations.

Every check reads only public surfaces: the HTTP API (payments, subscriptions, profiles,
access, audit events) and localstripe itself (the PaymentIntents the fault layer saw created,
their charges). A `Violation` names the invariant, the object and what differs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

COLLECTED = frozenset({"succeeded", "partially_refunded", "refunded", "disputed"})
FAILED_INTENT = frozenset({"requires_payment_method", "canceled"})
# One charge per (subscription, period, kind) for these kinds; prorations and plan changes may
# legitimately be charged more than once in a period (each member added, each change).
ONCE_PER_PERIOD = frozenset({"activation", "renewal", "reactivation", "retry"})
LIVE_FOR_ACCESS = frozenset({"active", "expiring"})


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.message}"


@dataclass
class Snapshot:
    """One community's state as the API shows it, and the Stripe objects it names."""

    subscriptions: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    profiles: list[dict[str, Any]]
    access: dict[str, dict[str, Any]]  # profile id -> GET /access body (those checked)
    audit: dict[str, list[dict[str, Any]]]  # subscription id -> events, oldest first
    intents: dict[str, dict[str, Any]]  # PaymentIntents Stripe made for this community
    charges: dict[str, dict[str, Any]]  # charge id -> charge (of succeeded intents)
    versions_before: dict[str, int] = field(default_factory=dict)
    # Detached card -> the PaymentIntents Stripe had made before it was detached.
    detached_cards: dict[str, frozenset[str]] = field(default_factory=dict)


def ledger_equals_stripe(snap: Snapshot) -> list[Violation]:
    """Every PaymentIntent has exactly one payment and every charged payment its intent:
    amount, currency and status agree; refunds sum the same on both sides."""
    found: list[Violation] = []
    by_id = {p["id"]: p for p in snap.payments}
    intents_per_payment: Counter[str] = Counter()
    for intent in snap.intents.values():
        payment_id = (intent.get("metadata") or {}).get("payment_id")
        where = f"{intent['id']} (payment {payment_id})"
        payment = by_id.get(payment_id or "")
        if payment is None:
            found.append(Violation("ledger=stripe", where, "no payment in the ledger"))
            continue
        intents_per_payment[payment["id"]] += 1
        named = (payment.get("stripe") or {}).get("payment_intent_id")
        if named not in (None, intent["id"]):
            found.append(Violation("ledger=stripe", where, f"the ledger names intent {named}"))
        if (intent["amount"], intent["currency"]) != (payment["total"], payment["currency"]):
            found.append(
                Violation(
                    "ledger=stripe",
                    where,
                    f"Stripe {intent['amount']} {intent['currency']}, "
                    f"ledger {payment['total']} {payment['currency']}",
                )
            )
        status = intent["status"]
        if status == "succeeded":
            if payment["status"] not in COLLECTED or payment["amount_paid"] != intent["amount"]:
                found.append(
                    Violation(
                        "ledger=stripe",
                        where,
                        f"Stripe succeeded, ledger {payment['status']} "
                        f"(paid {payment['amount_paid']})",
                    )
                )
            charge = snap.charges.get(_id(intent.get("latest_charge")) or "")
            if charge is not None and charge["amount_refunded"] != payment["amount_refunded"]:
                found.append(
                    Violation(
                        "refunds-equal",
                        where,
                        f"Stripe refunded {charge['amount_refunded']}, "
                        f"ledger {payment['amount_refunded']}",
                    )
                )
        elif status in FAILED_INTENT:
            if payment["status"] != "failed":
                found.append(
                    Violation(
                        "ledger=stripe", where, f"Stripe {status}, ledger {payment['status']}"
                    )
                )
        else:
            found.append(
                Violation(
                    "intent-open",
                    where,
                    f"the PaymentIntent is left {status} (ledger {payment['status']})",
                )
            )
    for payment_id, count in intents_per_payment.items():
        if count > 1:
            found.append(Violation("ledger=stripe", payment_id, f"{count} PaymentIntents"))
    for payment in snap.payments:
        named = (payment.get("stripe") or {}).get("payment_intent_id")
        if named is not None and named not in snap.intents:
            found.append(
                Violation("ledger=stripe", payment["id"], f"names {named}, unknown to Stripe")
            )
        if payment["status"] in COLLECTED and payment["total"] > 0 and named is None:
            found.append(
                Violation("ledger=stripe", payment["id"], "collected without a PaymentIntent")
            )
    return found


# Stripe's minimum charge per currency (the soak's plans use these two).
STRIPE_MINIMUM = {"usd": 50, "eur": 50}


def no_charge_under_the_minimum(snap: Snapshot) -> list[Violation]:
    """API.md: no charge below the currency's Stripe minimum is ever sent."""
    return [
        Violation(
            "stripe-minimum",
            f"{intent['id']} (payment {(intent.get('metadata') or {}).get('payment_id')})",
            f"charged {intent['amount']} {intent['currency']}, under the minimum",
        )
        for intent in snap.intents.values()
        if intent["amount"] < STRIPE_MINIMUM.get(intent["currency"], 0)
    ]


def no_double_charge(snap: Snapshot) -> list[Violation]:
    """No two successful charges for one (subscription, period, kind)."""
    collected: Counter[tuple[str, str, str]] = Counter()
    for payment in snap.payments:
        if payment["kind"] in ONCE_PER_PERIOD and payment["status"] in COLLECTED:
            start = (payment.get("period") or {}).get("start") or "-"
            collected[(payment["subscription_id"], start, payment["kind"])] += 1
    return [
        Violation("one-charge-per-period", f"{sub} {start} {kind}", f"{count} successful charges")
        for (sub, start, kind), count in collected.items()
        if count > 1
    ]


def no_charge_on_a_detached_card(snap: Snapshot) -> list[Violation]:
    """API.md: a detached card is never sent to Stripe again (no PaymentIntent names it after
    the detach; localstripe would charge it, Stripe would refuse it)."""
    return [
        Violation(
            "detached-card",
            f"{intent['id']} (payment {(intent.get('metadata') or {}).get('payment_id')})",
            f"charged {intent['amount']} on {method}, detached before",
        )
        for intent in snap.intents.values()
        if (method := _id(intent.get("payment_method"))) in snap.detached_cards
        and intent["id"] not in snap.detached_cards[method]
    ]


def left_pending(payment: dict[str, Any]) -> bool:
    """A payment, or a refund of it, still waits for what Stripe did."""
    return payment["status"] == "pending" or payment.get("amount_refund_pending", 0) > 0


def nothing_pending(snap: Snapshot) -> list[Violation]:
    """After the recovery pass no payment and no refund is pending."""
    return [
        Violation(
            "nothing-pending",
            p["id"],
            f"{p['kind']} payment still pending"
            if p["status"] == "pending"
            else f"refund of {p['amount_refund_pending']} still pending",
        )
        for p in snap.payments
        if left_pending(p)
    ]


def credit_sane(snap: Snapshot) -> list[Violation]:
    """Credit is never negative and never spent in another currency than it was given in."""
    found: list[Violation] = []
    currency_of: dict[str, str | None] = {}
    for profile in snap.profiles:
        currency_of[profile["id"]] = profile.get("currency")
        if profile.get("credit_balance", 0) < 0:
            found.append(
                Violation("credit", profile["id"], f"credit balance {profile['credit_balance']}")
            )
    for payment in snap.payments:
        if payment.get("credit_applied", 0) < 0:
            found.append(Violation("credit", payment["id"], "negative credit applied"))
        if payment.get("credit_applied", 0) > 0:
            owner = (payment.get("billed_to") or {}).get("profile_id")
            held_in = currency_of.get(owner or "")
            if held_in is not None and held_in != payment["currency"]:
                found.append(
                    Violation(
                        "credit",
                        payment["id"],
                        f"credit held in {held_in} spent on a {payment['currency']} charge",
                    )
                )
    return found


def access_follows_the_rule(snap: Snapshot) -> list[Violation]:
    """DESIGN.md section 2: access = free access, or a member of an active/expiring one."""
    members_of_live: dict[str, set[str]] = {}
    for sub in snap.subscriptions:
        if sub["status"] in LIVE_FOR_ACCESS:
            for member in sub["members"]:
                members_of_live.setdefault(member["profile_id"], set()).add(sub["id"])
    free = {p["id"]: bool(p.get("free_access")) for p in snap.profiles}
    found: list[Violation] = []
    for profile_id, answer in snap.access.items():
        expected = free.get(profile_id, False) or profile_id in members_of_live
        if bool(answer["has_access"]) != expected:
            found.append(
                Violation(
                    "access",
                    profile_id,
                    f"has_access={answer['has_access']}, the rule says {expected} "
                    f"(live subscriptions {sorted(members_of_live.get(profile_id, ()))})",
                )
            )
    return found


def audit_replays_to_state(snap: Snapshot) -> list[Violation]:
    """Replaying a subscription's audit trail (from -> to, in order) gives its current status."""
    found: list[Violation] = []
    for sub in snap.subscriptions:
        events = snap.audit.get(sub["id"], [])
        status: str | None = None
        for index, event in enumerate(events):
            before, after = event.get("from_status"), event.get("to_status")
            if index > 0 and before != status:
                found.append(
                    Violation(
                        "audit-replay",
                        sub["id"],
                        f"event {index} {event['type']} starts from {before}, "
                        f"the trail was at {status}",
                    )
                )
                break
            status = after
        if events and status != sub["status"]:
            found.append(
                Violation("audit-replay", sub["id"], f"trail ends {status}, is {sub['status']}")
            )
    return found


def versions_only_grow(snap: Snapshot) -> list[Violation]:
    return [
        Violation("version-grows", sub["id"], f"version {sub['version']} after {before}")
        for sub in snap.subscriptions
        if (before := snap.versions_before.get(sub["id"])) is not None and sub["version"] < before
    ]


INVARIANTS = (
    ledger_equals_stripe,
    no_charge_under_the_minimum,
    no_double_charge,
    no_charge_on_a_detached_card,
    nothing_pending,
    credit_sane,
    access_follows_the_rule,
    audit_replays_to_state,
    versions_only_grow,
)


def check_all(snap: Snapshot) -> list[Violation]:
    found: list[Violation] = []
    for invariant in INVARIANTS:
        found += invariant(snap)
    return found


def server_errors(notes: Iterable[str]) -> list[Violation]:
    """No answer is ever a 500 (503 is the documented transient answer)."""
    return [Violation("no-500", "api", note) for note in notes]


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return str(value) if value else None
