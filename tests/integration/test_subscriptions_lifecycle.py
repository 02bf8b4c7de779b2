"""The lifecycle through the API on a FixedClock: members, cancel/resume, queued changes, plan
changes with credit, renewals, failed payments, retries, grace and reactivation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from tests.support.billing_api import Api, api_at, billing_env
from tests.support.localstripe import localstripe_url

__all__ = ["api_at", "billing_env", "localstripe_url"]

APRIL = datetime(2026, 4, 1, tzinfo=UTC)  # a 30-day period: Apr 1 -> May 1


def sent_mail() -> list[Any]:
    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


def run(api: Api, action: str, subscription_id: str) -> str:
    """Run one scheduled action (services/scheduled.py) on the subscription now."""
    actions = api.env.container.scheduled
    outcome: str = getattr(actions, action)(api.community_id, subscription_id, api.env.clock.now())
    return outcome


def test_an_email_subject_is_one_line_whatever_the_plan_is_named(api_at: Any) -> None:
    """A name may hold line breaks (the API takes any non-blank name); a subject line cannot
    (a header with a bare CR/LF is refused or read as another header): the subject sent to SES
    has every run of whitespace as one space."""
    api: Api = api_at(APRIL)
    plan = api.plan(name="Gold\r\nBcc: all@example.net")
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    friend = api.customer("Ben", card=None)
    mails_before = len(sent_mail())

    api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/members",
        {"members": [{"profile_id": friend["id"]}], "send_welcome_email": True},
    )

    [welcome] = sent_mail()[mails_before:]
    assert welcome.subject.startswith("Welcome to Gold Bcc: all@example.net at ")
    assert "\r" not in welcome.subject and "\n" not in welcome.subject
    assert welcome.destinations["ToAddresses"] == ["ben@example.com"]


def test_a_member_added_on_day_10_pays_the_prorated_price_and_the_fee(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 3000}, activation_fee=500)
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    friend = api.customer("Ben", card=None)
    kid = api.dependent(owner["id"])
    api.env.clock.advance(timedelta(days=10))
    mails_before = len(sent_mail())

    added = api.ok(
        "POST",
        f"/v1/subscriptions/{sub['id']}/members",
        {
            "members": [
                {"profile_id": friend["id"], "activation_fee": "charge"},
                {"profile_id": kid["id"], "activation_fee": "waive"},
            ],
            "send_welcome_email": True,
            "send_receipt_email": True,
        },
    )

    payment = added["payment"]
    assert payment["kind"] == "proration" and payment["status"] == "succeeded"
    assert [(ln["kind"], ln["profile_id"], ln["amount"]) for ln in payment["lines"]] == [
        ("proration", friend["id"], 2000),  # 3000 x 20 days left / 30 days
        ("activation_fee", friend["id"], 500),
        ("proration", kid["id"], 2000),
    ]
    assert payment["total"] == 4500 and payment["period"] == sub["current_period"]
    assert api.intent(payment["stripe"]["payment_intent_id"]).amount == 4500
    members = {m["profile_id"]: m for m in added["subscription"]["members"]}
    assert members[friend["id"]]["activation_fee"] == {
        "status": "paid",
        "amount": 500,
        "payment_id": payment["id"],
    }
    assert members[kid["id"]]["activation_fee"]["status"] == "waived"
    assert members[kid["id"]]["kind"] == "dependent"
    assert added["emails_sent"] == [friend["id"]]  # welcome and receipt: the new member
    assert added["emails_skipped"] == [kid["id"]]
    mails = sent_mail()[mails_before:]
    assert [m.destinations["ToAddresses"] for m in mails] == [
        ["ben@example.com"],
        ["ben@example.com"],
    ]
    assert payment["id"] in mails[1].subject
    # Adding someone already there is a 400 naming the field; nothing is charged.
    again = api.call(
        "POST", f"/v1/subscriptions/{sub['id']}/members", {"members": [{"profile_id": kid["id"]}]}
    )
    assert again.status == 400
    assert again.body["error"]["details"][0]["field"] == "members[0].profile_id"
    assert len(api.payments(sub["id"])) == 2


def test_remove_at_period_end_restore_remove_now_and_renew_without_the_leaver(
    api_at: Any,
) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 3000})
    owner = api.customer("Ada")
    b, c = api.dependent(owner["id"], "B"), api.dependent(owner["id"], "C")
    sub = api.active(plan, owner, [owner["id"], b["id"], c["id"]])
    path = f"/v1/subscriptions/{sub['id']}/members"

    leaving = api.ok("DELETE", f"{path}/{b['id']}?at=period_end")
    removal = {m["profile_id"]: m["removal"] for m in leaving["members"]}
    assert removal[b["id"]] == {"effective_at": "2026-05-01T00:00:00Z"}
    restored = api.ok("POST", f"{path}/{b['id']}/restore")
    assert all(m["removal"] is None for m in restored["members"])
    assert api.call("POST", f"{path}/{b['id']}/restore").status == 409
    api.ok("DELETE", f"{path}/{b['id']}?at=period_end")
    gone = api.ok("DELETE", f"{path}/{c['id']}?at=now")
    assert [m["profile_id"] for m in gone["members"]] == [owner["id"], b["id"]]
    assert api.ok("GET", f"/v1/profiles/{c['id']}/access")["has_access"] is False
    assert api.call("DELETE", f"{path}/{owner['id']}?at=now").status == 409  # last staying one
    assert api.call("DELETE", f"{path}/{c['id']}?at=now").status == 404

    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    calls: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    events = api.env.container.dynamodb.meta.events
    events.register("before-call.dynamodb", count)
    try:
        assert run(api, "renew", sub["id"]) == "renewed"
    finally:
        events.unregister("before-call.dynamodb", count)
    # The subscription; its owner (credit, customer), community, card snapshot and plan (its
    # latest failed-payment terms) in one read; then the two transactions of DESIGN.md
    # section 6 (pending payment, resolution), the second also deleting the leaver's link. No
    # Scan, and no link writer after the transaction.
    assert calls == ["GetItem", "BatchGetItem"] + ["TransactWriteItems"] * 2
    assert api.ok("GET", f"/v1/profiles/{b['id']}/access")["has_access"] is False
    assert run(api, "renew", sub["id"]) == "not_due"  # a duplicate message
    renewed = api.ok("GET", f"/v1/subscriptions/{sub['id']}")
    assert [m["profile_id"] for m in renewed["members"]] == [owner["id"]]
    assert renewed["current_period"] == {
        "start": "2026-05-01T00:00:00Z",
        "end": "2026-06-01T00:00:00Z",
    }
    renewal = api.payments(sub["id"])[0]
    assert renewal["kind"] == "renewal"
    assert [(ln["quantity"], ln["amount"]) for ln in renewal["lines"]] == [(1, 3000)]
    assert api.ok("GET", f"/v1/profiles/{b['id']}/access")["has_access"] is False


def test_cancel_at_period_end_resume_cancel_now_and_expire(api_at: Any) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan()
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    path = f"/v1/subscriptions/{sub['id']}"

    expiring = api.ok("POST", f"{path}/cancel", {"at": "period_end"})
    assert (expiring["status"], expiring["cancel_at"]) == ("expiring", "2026-05-01T00:00:00Z")
    assert api.ok("GET", f"/v1/profiles/{owner['id']}/access")["has_access"] is True
    assert api.call("PATCH", path, {"billing_cycle": "month"}).status == 409
    resumed = api.ok("POST", f"{path}/resume")
    assert (resumed["status"], resumed["cancel_at"]) == ("active", None)
    assert resumed["current_period"] == sub["current_period"]
    assert api.call("POST", f"{path}/resume").status == 409
    cancelled = api.ok("POST", f"{path}/cancel", {"at": "now"})
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancellation_reason"] == "requested"
    assert api.call("POST", f"{path}/cancel", {"at": "now"}).status == 409
    assert api.ok("GET", f"/v1/profiles/{owner['id']}/access")["has_access"] is False
    assert len(api.payments(sub["id"])) == 1  # no refund, no charge

    other = api.active(plan, api.customer("Bo"))
    api.ok("POST", f"/v1/subscriptions/{other['id']}/cancel", {"at": "period_end"})
    assert run(api, "expire", other["id"]) == "not_due"
    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    assert run(api, "renew", other["id"]) == "not_due"
    assert run(api, "expire", other["id"]) == "expired"
    expired = api.ok("GET", f"/v1/subscriptions/{other['id']}")
    assert (expired["status"], expired["cancellation_reason"]) == ("cancelled", "expired")
    assert api.events(other["id"])[-1] == "subscription.expired"


def test_a_queued_cycle_change_shows_in_pending_changes_and_applies_at_renewal(
    api_at: Any,
) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 3000, "year": 30000})
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    path = f"/v1/subscriptions/{sub['id']}"

    queued = api.ok("PATCH", path, {"billing_cycle": "year"})
    assert queued["pending_changes"] == {"billing_cycle": "year"}
    assert queued["billing_cycle"] == "month"
    assert api.ok("PATCH", path, {"billing_cycle": "month"})["pending_changes"] == {}
    api.ok("PATCH", path, {"billing_cycle": "year"})
    assert api.call("PATCH", path, {"member_ids": []}).status == 409
    assert api.call("PATCH", path, {"billing_cycle": None}).status == 400

    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    assert run(api, "renew", sub["id"]) == "renewed"
    yearly = api.ok("GET", path)
    assert (yearly["billing_cycle"], yearly["pending_changes"]) == ("year", {})
    assert yearly["current_period"] == {
        "start": "2026-05-01T00:00:00Z",
        "end": "2027-05-01T00:00:00Z",
    }
    assert api.payments(sub["id"])[0]["total"] == 30000


def test_a_renewal_onto_a_queued_plan_reads_its_latest_terms_in_the_same_one_read(
    api_at: Any,
) -> None:
    """docs/rules/state.md rule 6: a plan PATCHed after a change to it was queued names the
    renewal onto it, and its grace and retries apply when that renewal fails; read with the
    rest of the renewal's context (GetItem, BatchGetItem, two transactions)."""
    api: Api = api_at(APRIL)
    gold = api.plan(name="Gold", prices={"month": 3000}, failed_payment_grace_days=14)
    silver = api.plan(
        name="Silver",
        prices={"month": 2000},
        failed_payment_grace_days=14,
        retry_schedule_days=[3, 7],
    )
    owner = api.customer("Ada")
    sub = api.active(gold, owner)
    path = f"/v1/subscriptions/{sub['id']}"
    api.ok("POST", f"{path}/change-plan", {"plan_id": silver["id"], "effective": "period_end"})
    api.ok(
        "PATCH",
        f"/v1/plans/{silver['id']}",
        {"name": "Silver Plus", "failed_payment_grace_days": 5, "retry_schedule_days": [1, 2]},
    )
    api.ok("PATCH", path, {"payment_method_id": api.card(owner["id"], "4000000000000341")})
    preview = api.ok("GET", f"{path}/preview?action=renew")

    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    calls: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    events = api.env.container.dynamodb.meta.events
    events.register("before-call.dynamodb", count)
    try:
        assert run(api, "renew", sub["id"]) == "renewal_failed"
    finally:
        events.unregister("before-call.dynamodb", count)
    assert calls == ["GetItem", "BatchGetItem"] + ["TransactWriteItems"] * 2

    failed = api.ok("GET", path)
    assert (failed["status"], failed["pending_changes"]) == (
        "failed_payment",
        {"plan_id": silver["id"]},
    )
    assert (failed["cancel_at"], failed["next_retry_at"]) == (  # grace: 5 days, retry: day 1
        "2026-05-06T00:00:00Z",
        "2026-05-02T00:00:00Z",
    )
    [renewal] = [p for p in api.payments(sub["id"]) if p["kind"] == "renewal"]
    assert (
        [(line["plan_name"], line["amount"]) for line in preview["lines"]]
        == [(line["plan_name"], line["amount"]) for line in renewal["lines"]]
        == [("Silver Plus", 2000)]
    )


def test_change_plan_now_up_charges_the_difference_and_down_credits_the_next_charge(
    api_at: Any,
) -> None:
    api: Api = api_at(APRIL)
    gold = api.plan(name="Gold", prices={"month": 3000})
    platinum = api.plan(name="Platinum", prices={"month": 6000})
    silver = api.plan(name="Silver", prices={"month": 1500})
    owner = api.customer("Ada")
    sub = api.active(gold, owner)
    path = f"/v1/subscriptions/{sub['id']}"
    api.env.clock.advance(timedelta(days=10))

    up = api.ok("POST", f"{path}/change-plan", {"plan_id": platinum["id"], "effective": "now"})
    assert up["plan"]["name"] == "Platinum"
    charge = api.payments(sub["id"])[0]
    assert charge["kind"] == "plan_change"
    assert [(ln["kind"], ln["amount"]) for ln in charge["lines"]] == [("proration", 2000)]

    down = api.ok("POST", f"{path}/change-plan", {"plan_id": silver["id"], "effective": "now"})
    assert down["plan"]["name"] == "Silver"
    assert len(api.payments(sub["id"])) == 2  # nothing charged going down
    assert api.ok("GET", f"/v1/profiles/{owner['id']}")["credit_balance"] == 3000  # 4000 - 1000

    queued = api.ok(
        "POST", f"{path}/change-plan", {"plan_id": gold["id"], "effective": "period_end"}
    )
    assert queued["pending_changes"] == {"plan_id": gold["id"]}
    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    preview = api.ok("GET", f"{path}/preview?action=renew")
    assert (preview["subtotal"], preview["credit_applied"], preview["total"]) == (3000, 3000, 0)
    assert run(api, "renew", sub["id"]) == "renewed"
    renewal = api.payments(sub["id"])[0]
    assert renewal["kind"] == "renewal"
    assert (renewal["subtotal"], renewal["credit_applied"], renewal["total"]) == (3000, 3000, 0)
    assert renewal["lines"][-1]["kind"] == "credit" and renewal["lines"][-1]["amount"] == -3000
    assert renewal["stripe"]["payment_intent_id"] is None  # the credit paid it all
    assert api.ok("GET", f"/v1/profiles/{owner['id']}")["credit_balance"] == 0
    assert api.ok("GET", path)["plan"]["name"] == "Gold"


def test_failed_renewal_retries_then_reactivates_and_grace_ends_in_cancellation(
    api_at: Any,
) -> None:
    api: Api = api_at(APRIL)
    plan = api.plan(prices={"month": 3000}, retry_schedule_days=[3], failed_payment_grace_days=7)
    owner = api.customer("Ada")
    sub = api.active(plan, owner)
    path = f"/v1/subscriptions/{sub['id']}"
    bad = api.card(owner["id"], "4000000000000341")
    api.ok("PATCH", path, {"payment_method_id": bad})

    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    assert run(api, "renew", sub["id"]) == "renewal_failed"
    failed = api.ok("GET", path)
    assert failed["status"] == "failed_payment"
    assert (failed["failed_at"], failed["next_retry_at"]) == (
        "2026-05-01T00:00:00Z",
        "2026-05-04T00:00:00Z",
    )
    assert api.ok("GET", f"/v1/profiles/{owner['id']}/access")["has_access"] is False
    assert api.call("PATCH", path, {"billing_cycle": "month"}).status == 409
    assert run(api, "process_failed_payment", sub["id"]) == "not_due"
    api.env.clock.advance_to(datetime(2026, 5, 4, tzinfo=UTC))
    assert run(api, "process_failed_payment", sub["id"]) == "retry_failed"

    reply = api.call("POST", f"{path}/reactivate", {})
    assert reply.status == 402 and api.ok("GET", path)["status"] == "failed_payment"
    reactivated = api.ok("POST", f"{path}/reactivate", {"payment_method_id": owner["card"]})
    assert reactivated["status"] == "active"
    assert reactivated["current_period"]["start"] == "2026-05-04T00:00:00Z"
    kinds = sorted(p["kind"] for p in api.payments(sub["id"]))
    assert kinds == ["activation", "reactivation", "reactivation", "renewal", "retry"]
    [payment] = [
        p for p in api.payments(sub["id"]) if p["kind"] == "reactivation" and p["amount_paid"]
    ]
    assert payment["total"] == 3000 and len(payment["lines"]) == 1  # no activation fee again

    lapsed = api.active(plan, api.customer("Bo"))
    bo_bad = api.card(lapsed["owner_id"], "4000000000000341")
    api.ok("PATCH", f"/v1/subscriptions/{lapsed['id']}", {"payment_method_id": bo_bad})
    api.env.clock.advance_to(datetime(2026, 6, 4, tzinfo=UTC))
    assert run(api, "renew", lapsed["id"]) == "renewal_failed"
    api.env.clock.advance(timedelta(days=7))
    assert run(api, "process_failed_payment", lapsed["id"]) == "grace_cancelled"
    ended = api.ok("GET", f"/v1/subscriptions/{lapsed['id']}")
    assert (ended["status"], ended["cancellation_reason"]) == ("cancelled", "payment_failed")


def test_the_audit_trail_explains_every_change_with_times_in_utc_z(api_at: Any) -> None:
    """API.md, Conventions: times are RFC 3339 UTC with `Z`, the audit trail's details too
    (they read `+00:00`); every status change has an event with its actor."""
    api: Api = api_at(APRIL)
    owner = api.customer("Ada")
    kid = api.dependent(owner["id"])
    plan = api.plan(prices={"month": 3000, "year": 30000})
    sub = api.active(plan, owner, [owner["id"], kid["id"]])
    path = f"/v1/subscriptions/{sub['id']}"
    api.ok("DELETE", f"{path}/members/{kid['id']}?at=period_end")
    api.ok("PATCH", path, {"billing_cycle": "year"})
    api.env.clock.advance_to(datetime(2026, 5, 1, tzinfo=UTC))
    assert run(api, "renew", sub["id"]) == "renewed"
    api.ok("POST", f"{path}/cancel", {"at": "period_end"})

    trail = api.ok("GET", f"{path}/events?limit=100")["data"]
    times = {
        (event["type"], name): value
        for event in trail
        for name, value in {"at": event["at"], **event["details"]}.items()
        if name == "at" or name.endswith(("_at", "_start", "_end"))
    }
    assert times[("subscription.activated", "period_start")] == "2026-04-01T00:00:00Z"
    assert times[("subscription.renewed", "period_end")] == "2027-05-01T00:00:00Z"
    assert times[("member.removal_scheduled", "effective_at")] == "2026-05-01T00:00:00Z"
    assert times[("subscription.cancel_scheduled", "cancel_at")] == "2027-05-01T00:00:00Z"
    assert all(value.endswith("Z") for value in times.values()), times
    actors = {event["type"]: event["actor"] for event in trail}
    assert (actors["subscription.renewed"], actors["subscription.cancel_scheduled"]) == (
        "scheduler",
        "api",
    )
    # What the renewal changed besides the period is named: the removal that took effect and
    # the queued cycle.
    [renewed] = [e["details"] for e in trail if e["type"] == "subscription.renewed"]
    assert renewed["removed_member_ids"] == [kid["id"]]
    assert (renewed["previous_billing_cycle"], renewed["billing_cycle"]) == ("month", "year")
    changes = [
        (e["from_status"], e["to_status"]) for e in trail if e["from_status"] != e["to_status"]
    ]
    assert changes == [(None, "inactive"), ("inactive", "active"), ("active", "expiring")]
