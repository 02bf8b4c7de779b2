"""Optimistic locking under real concurrency: threads against moto in server mode.

Every subscription write is conditional on the version read; a command that loses the race
re-reads and re-applies itself, so N concurrent changes all land and none is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.adapters.aws import reset_clients
from chalicelib.adapters.clock import FixedClock
from chalicelib.adapters.dynamodb.card_snapshots import CardSnapshots
from chalicelib.adapters.dynamodb.schema import ensure_table
from chalicelib.config import Settings
from chalicelib.domain.communities import Community
from chalicelib.domain.errors import ConcurrentChange
from chalicelib.domain.plans import Plan
from chalicelib.domain.profiles import Profile
from chalicelib.services.charging import stage_change
from infra.local.stack import free_port

NOW = datetime(2026, 4, 1, tzinfo=UTC)
CID = "com_concurrency"
THREADS = 8


def serial_moto_server(port: int) -> Any:
    """moto's server, answering one request at a time.

    moto 5.2.5's TransactWriteItems is not atomic across threads: a transaction whose condition
    fails restores a copy of the whole table taken when it began, wiping whatever another
    request committed meanwhile. DynamoDB serializes conflicting transactions; a server that
    handles requests one by one behaves the same, while our threads still race each other.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class SerialMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                "127.0.0.1", port, app, False, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerialMotoServer(ip_address="127.0.0.1", port=port, verbose=False)


@pytest.fixture(scope="module")
def container() -> Iterator[bootstrap.Container]:
    port = free_port()
    server = serial_moto_server(port)
    server.start()
    reset_clients()
    try:
        settings = Settings.from_env(
            {
                "BILLING_STAGE": "test",
                "BILLING_TABLE_NAME": "concurrency",
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        made = bootstrap.Container(settings, clock=FixedClock(NOW))
        ensure_table(made.dynamodb, settings.table_name)
        made.communities.create(Community(CID, "Gym", "usd", None, 0, NOW))
        yield made
    finally:
        server.stop()
        reset_clients()


def active_free_subscription(container: bootstrap.Container, size: int) -> str:
    """A free plan needs a card but charges nothing: no Stripe call is made."""
    plan = Plan("plan_free", CID, "Free", None, "usd", {"month": 0}, 0, 14, (), None, "active", NOW)
    if container.plans.find(CID, plan.id) is None:
        container.plans.create(plan)
    owner = Profile(
        "prof_owner",
        CID,
        "customer",
        "Ada",
        "ada@example.com",
        None,
        False,
        {},
        "usd",
        NOW,
        stripe_customer_id="cus_1",
    )
    if container.profiles.find(CID, owner.id) is None:
        container.profiles.create(owner)
        container.profiles.set_stripe_customer(CID, owner.id, "cus_1", None, None)
        CardSnapshots(container.dynamodb, container.settings.table_name).put(
            CID, {"id": "pm_1", "profile_id": owner.id, "customer": "cus_1", "brand": "visa"}
        )
    ids = []
    for index in range(size):
        dependent = Profile(
            f"prof_{index}_{free_port()}",
            CID,
            "dependent",
            f"Kid {index}",
            None,
            owner.id,
            False,
            {},
            "usd",
            NOW,
        )
        container.profiles.create(dependent)
        ids.append(dependent.id)
    sub = container.subscription_service.create(
        CID,
        plan_id=plan.id,
        owner_id=owner.id,
        member_ids=ids,
        billing_cycle="month",
        payment_method_id="pm_1",
        waive_activation_fee=False,
    )
    container.subscription_service.activate(CID, sub.id, None)
    return sub.id


def test_concurrent_member_removals_all_land(container: bootstrap.Container) -> None:
    sub_id = active_free_subscription(container, THREADS + 1)
    before = container.subscription_service.get(CID, sub_id)
    leaving = before.member_ids[:THREADS]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def remove(profile_id: str) -> None:
        barrier.wait()
        try:
            container.member_service.remove(CID, sub_id, profile_id, "period_end")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=remove, args=(pid,)) for pid in leaving]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    after = container.subscription_service.get(CID, sub_id)
    assert {m.profile_id for m in after.members if m.removal_pending} == set(leaving)
    assert after.version == before.version + THREADS
    page = container.audit_events.list(CID, sub_id, 100, None)
    assert [e["type"] for e in page.items].count("member.removal_scheduled") == THREADS


def test_a_write_from_a_stale_read_is_refused(container: bootstrap.Container) -> None:
    sub_id = active_free_subscription(container, 2)
    stale = container.subscription_service.get(CID, sub_id)
    container.subscription_service.cancel(CID, sub_id, "period_end")
    outcome = stale.cancel("now", NOW)
    with pytest.raises(ConcurrentChange), container.unit_of_work() as uow:
        uow.subscriptions.adopt(stale)
        stage_change(uow, stale, outcome)
        uow.commit()
    current = container.subscription_service.get(CID, sub_id)
    assert current.status == "expiring"
    assert current.version == stale.version + 1
    assert replace(current, version=0) != replace(outcome.subscription, version=0)
