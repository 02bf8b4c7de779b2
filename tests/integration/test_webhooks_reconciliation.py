"""The reconciliation job pages localstripe's Events API from a stored cursor and feeds every
event we never received through the same pipeline as a webhook delivery."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.jobs.local_runner import JOBS
from chalicelib.jobs.reconciliation import reconcile
from tests.integration.conftest import PLATFORM_KEY, Env
from tests.support import stripe_events as se
from tests.support.localstripe import card_on_customer, localstripe_url, stripe_for
from tests.support.webhook_flow import Billing, billing, call, community, throttled_once

__all__ = ["billing", "localstripe_url"]
SECRET = "whsec_integration"


@pytest.fixture
def stripe_env(env: Env, localstripe_url: str) -> Iterator[Env]:
    """The env with Stripe = localstripe (a fresh container on the same moto table)."""
    settings = replace(env.settings, stripe_api_base=localstripe_url)
    container = bootstrap.Container(settings, clock=env.clock)
    bootstrap.override_container(container)
    yield replace(env, container=container, settings=settings)
    bootstrap.override_container(env.container)


def charge_on_localstripe(url: str, metadata: dict[str, str]) -> dict[str, Any]:
    """A PaymentIntent that succeeds on localstripe (it records payment_intent.succeeded)."""
    client = stripe_for(url)
    customer, method = card_on_customer(client, "4242424242424242")
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1200,
            "currency": "usd",
            "customer": customer,
            "payment_method": method,
            "confirm": True,
            "off_session": True,
            "metadata": metadata,
        }
    )
    result: dict[str, Any] = intent.to_dict()
    return result


def events_of(env: Env, intent_id: str) -> list[dict[str, Any]]:
    response = env.client.http.get(
        "/v1/webhook-events?type=payment_intent.succeeded&limit=100",
        headers=env.platform_headers(),
    )
    data = json.loads(response.body)["data"]
    return [e for e in data if e["payload"]["data"]["object"]["id"] == intent_id]


def test_an_event_that_never_arrived_is_fed_once_and_the_cursor_moves(stripe_env: Env) -> None:
    env = stripe_env
    intent = charge_on_localstripe(
        env.settings.stripe_api_base or "", {"community_id": "com_x", "payment_id": "pay_x"}
    )
    first = reconcile(env.container, page_size=2)
    assert first.events_fed >= 1
    [stored] = events_of(env, intent["id"])
    # Fed through the same handler: our ids, but no such payment here, so it is ignored.
    assert stored["status"] == "ignored"
    assert stored["error"] == "no payment pay_x in community com_x"
    cursor = env.container.webhook_events.reconciliation_cursor(None)
    assert cursor is not None and cursor >= stored["payload"]["created"]

    second = reconcile(env.container, page_size=2)
    assert second.events_fed == 0
    assert second.events_listed >= 1  # the overlap window is read again and de-duplicated
    assert len(events_of(env, intent["id"])) == 1


def test_an_event_already_delivered_by_webhook_is_not_fed_again(stripe_env: Env) -> None:
    env = stripe_env
    reconcile(env.container)  # catch up with what earlier tests left on localstripe
    intent = charge_on_localstripe(env.settings.stripe_api_base or "", {"community_id": "com_y"})
    listed = stripe_for(env.settings.stripe_api_base or "").v1.events.list(
        params={"type": "payment_intent.succeeded", "limit": 100}
    )
    [event] = [e.to_dict() for e in listed.data if e.data.object.id == intent["id"]]
    body = se.body_of(event)
    delivered = env.client.http.post(
        "/webhooks/stripe", body=body, headers=se.signed_headers(body, SECRET)
    )
    assert json.loads(delivered.body)["result"] == "ignored"
    result = reconcile(env.container)
    assert result.events_fed == 0
    assert len(events_of(env, intent["id"])) == 1


def test_an_event_fed_here_that_fails_transiently_is_fed_again_by_the_next_run(
    stripe_env: Env,
) -> None:
    """Stripe never delivered it, so Stripe will not redeliver it either: a transient failure
    while feeding it (DynamoDB throttled) is stored as such, the run goes on, the cursor stays
    at or before it, and the next run feeds it again (found by an outside probe: it was skipped
    for good as "already stored", and the failure ended the whole run)."""
    env = stripe_env
    reconcile(env.container)  # catch up with what earlier tests left on localstripe
    intent = charge_on_localstripe(
        env.settings.stripe_api_base or "", {"community_id": "com_z", "payment_id": "pay_z"}
    )

    with throttled_once(env.container.dynamodb, "PutItem") as fired:
        first = reconcile(env.container)

    assert fired and first.failed == 1 and first.complete
    [stored] = events_of(env, intent["id"])
    assert (stored["status"], stored["error"].startswith("transient failure")) == ("failed", True)
    cursor = env.container.webhook_events.reconciliation_cursor(None)
    assert cursor is not None and cursor <= stored["payload"]["created"]
    second = reconcile(env.container)
    assert second.events_fed == 1 and second.failed == 0
    [stored] = events_of(env, intent["id"])
    assert (stored["status"], stored["error"]) == ("ignored", "no payment pay_z in community com_z")
    assert reconcile(env.container).events_fed == 0


def test_reconciliation_is_a_registered_sweep(stripe_env: Env) -> None:
    import app

    assert JOBS.sweeps["webhook_reconciliation"](stripe_env.container) >= 0
    assert "webhook_reconciliation" in {f.name for f in app.app.event_sources}


def test_an_account_that_disconnected_the_platform_does_not_stop_the_run(billing: Billing) -> None:
    """A community whose connected account deauthorized the platform keeps that account (so a
    reconnect can lift the flag), and Stripe answers its Events API 403. That account is
    skipped (its cursor stays where it was); the run goes on with every other account."""
    env = billing.env
    readable = "acct_readable" + se.unique("x").replace("_", "")
    community(env.client, PLATFORM_KEY, account=readable)
    env.clock.advance(timedelta(seconds=1))  # listed newest first: the revoked one is read first
    revoked = "acct_revoked" + se.unique("x").replace("_", "")
    community(env.client, PLATFORM_KEY, account=revoked)
    billing.cutoff.disconnected.add(revoked)

    result = reconcile(env.container)

    assert result.complete
    assert env.container.webhook_events.reconciliation_cursor(revoked) is None
    assert env.container.webhook_events.reconciliation_cursor(readable) is not None


def test_the_events_of_an_account_a_community_has_left_are_still_read(billing: Billing) -> None:
    """Payments taken on a community's previous connected account stay there: their refunds,
    disputes and late outcomes are that account's events. After the community connects another
    account, the job still reads the old one's (localstripe answers every account with the same
    events, so what shows it is the old account's cursor moving on)."""
    env = billing.env
    left = "acct_left" + se.unique("x").replace("_", "")
    community_id, _ = community(env.client, PLATFORM_KEY, account=left)
    charge_on_localstripe(env.settings.stripe_api_base or "", {"community_id": "com_left"})
    reconcile(env.container)
    before = env.container.webhook_events.reconciliation_cursor(left)
    assert before is not None
    status, _ = call(
        env.client,
        "patch",
        f"/v1/communities/{community_id}",
        PLATFORM_KEY,
        {"stripe_account_id": "acct_joined" + se.unique("x").replace("_", "")},
    )
    assert status == 200
    time.sleep(1.1)  # Stripe's `created` is whole seconds: the next event is a second later
    charge_on_localstripe(env.settings.stripe_api_base or "", {"community_id": "com_left"})

    reconcile(env.container)

    after = env.container.webhook_events.reconciliation_cursor(left)
    assert after is not None and after > before


def every_account(env: Env) -> list[str]:
    """Each community's accounts, in list order (an account two communities had: twice)."""
    accounts: list[str] = []
    cursor: str | None = None
    while True:
        page = env.container.communities.list(100, cursor)
        for listed in page.communities:
            accounts.extend(listed.stripe_accounts())
        if not page.has_more:
            return accounts
        cursor = page.next_cursor


def test_runs_that_each_reach_a_few_accounts_read_every_account_in_turn(billing: Billing) -> None:
    """A run reads the platform account, then the connected accounts from where the previous
    run stopped (DESIGN.md 7). Before, every run started again from the newest community:
    with more accounts than one run reaches, the older communities' accounts were never read.
    Here a run reaches 3 accounts (the platform's and 2), the oldest communities are ours, and
    enough runs to go round once read every account."""
    env = billing.env
    charge_on_localstripe(env.settings.stripe_api_base or "", {"community_id": "com_turns"})
    oldest = []
    for _ in range(3):
        oldest.append("acct_old" + se.unique("x").replace("_", ""))
        community(env.client, PLATFORM_KEY, account=oldest[-1])
        env.clock.advance(timedelta(seconds=1))
    for _ in range(6):  # newer: listed first
        community(env.client, PLATFORM_KEY, account="acct_new" + se.unique("x").replace("_", ""))
        env.clock.advance(timedelta(seconds=1))
    accounts = every_account(env)
    per_run = 2  # connected accounts a run reaches, besides the platform's
    runs = -(-len(accounts) // per_run)  # enough to go round once

    results = [reconcile(env.container, max_accounts=1 + per_run) for _ in range(runs)]

    assert all(r.accounts <= 1 + per_run for r in results)
    assert not results[0].complete
    unread = [a for a in oldest if env.container.webhook_events.reconciliation_cursor(a) is None]
    assert unread == []
    assert all(env.container.webhook_events.reconciliation_cursor(a) for a in accounts)
    assert reconcile(env.container, max_accounts=1 + per_run).accounts == 1 + per_run


def test_a_resume_place_that_no_longer_decodes_starts_the_run_at_the_top(billing: Billing) -> None:
    """The stored place is a signed list cursor; after the signing secret is rotated it no
    longer decodes, and the run starts from the newest community instead of failing."""
    env = billing.env
    charge_on_localstripe(env.settings.stripe_api_base or "", {"community_id": "com_resume"})
    newest = "acct_top" + se.unique("x").replace("_", "")
    community(env.client, PLATFORM_KEY, account=newest)
    env.container.webhook_events.save_reconciliation_resume("signed.with-an-old-key")

    result = reconcile(env.container, max_accounts=2)

    assert result.accounts == 2
    assert env.container.webhook_events.reconciliation_cursor(newest) is not None
