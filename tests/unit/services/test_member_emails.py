"""Emails when members are added (services/members.py) on the in-memory world."""

from __future__ import annotations

from chalicelib.domain.members import MemberAddition
from tests.support.world import CID, World


def test_the_receipt_for_a_customer_added_as_a_member_goes_to_that_member() -> None:
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(3000, activation_fee=500), owner)
    friend = world.customer("Ben", card="pm_none")
    kid = world.dependent("Kid", owner)

    added = world.members.add(
        CID,
        sub_id,
        [MemberAddition(friend.id), MemberAddition(kid.id)],
        send_welcome_email=False,
        send_receipt_email=True,
    )

    assert added.payment is not None
    receipts = [m for m in world.mailer.sent if added.payment.id in m.subject]
    assert [m.to for m in receipts] == ["ben@example.org"]
    assert "Ben" in receipts[0].body and "Ada" in receipts[0].body  # paid by the owner
    assert (added.emails_sent, added.emails_skipped) == ([friend.id], [kid.id])


def test_welcome_and_receipt_go_once_each_to_every_customer_added() -> None:
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(3000), owner)
    ben, cy = world.customer("Ben", card="pm_b"), world.customer("Cy", card="pm_c")

    added = world.members.add(
        CID,
        sub_id,
        [MemberAddition(ben.id), MemberAddition(cy.id)],
        send_welcome_email=True,
        send_receipt_email=True,
    )

    to = [m.to for m in world.mailer.sent]
    assert sorted(to) == ["ben@example.org", "ben@example.org", "cy@example.org", "cy@example.org"]
    assert "ada@example.org" not in to
    assert added.emails_sent == [ben.id, cy.id]


def test_the_welcome_and_the_receipt_name_the_community_the_plan_the_payer_and_the_date() -> None:
    """A new member may belong to several communities, each with a "Gold" plan: both emails
    say which community wrote, and the receipt when it was paid and by whom (never the
    owner's card)."""
    world = World()
    owner = world.customer("Ada")
    sub_id = world.active(world.plan(3000, activation_fee=500), owner)
    ben = world.customer("Ben", card="pm_none")

    added = world.members.add(
        CID,
        sub_id,
        [MemberAddition(ben.id)],
        send_welcome_email=True,
        send_receipt_email=True,
    )

    assert added.payment is not None
    welcome, receipt = world.mailer.sent
    assert welcome.subject == "Welcome to Gold at Harbour gym"
    assert "you are now a member of Gold at Harbour gym" in welcome.body
    assert "on the membership Ada holds" in welcome.body
    assert receipt.subject == f"Receipt from Harbour gym for payment {added.payment.id}"
    paid_on = world.clock.now().strftime("%B %-d, %Y at %H:%M UTC")
    assert f"Ada paid {'35.00 USD'} for your Gold membership at Harbour gym on {paid_on}" in (
        receipt.body
    )
    assert "Total: 35.00 USD" in receipt.body
    assert "4242" not in receipt.body  # the owner's card is the owner's business
