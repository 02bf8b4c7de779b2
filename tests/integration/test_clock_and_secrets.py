from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.clock import TEST_CLOCK_KEY, StoredTestClock
from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.config import Settings
from chalicelib.domain.errors import InvalidRequest
from tests.integration.conftest import TABLE_NAME
from tests.support.holding import Held
from tests.support.moto_clients import moto_client


def test_stored_test_clock_is_shared_through_dynamodb(aws: dict[str, str]) -> None:
    ddb = moto_client("dynamodb", region_name="us-east-1")
    first, second = StoredTestClock(ddb, TABLE_NAME), StoredTestClock(ddb, TABLE_NAME)
    target = first.now() + timedelta(days=40)
    first.advance_to(target)
    assert abs((second.now() - target).total_seconds()) < 2
    with pytest.raises(InvalidRequest):
        first.advance_to(target - timedelta(days=1))
    # The test clock's advance moves step by step with move_forward_to: a step already passed
    # leaves the clock where it is instead of failing.
    assert first.move_forward_to(target - timedelta(days=1)) >= target
    later = first.move_forward_to(target + timedelta(days=1))
    assert later == target + timedelta(days=1)
    assert second.now() >= target  # (its one-second cache may still show the older offset)


def test_a_stored_test_clock_with_a_start_starts_there_and_every_process_shares_it(
    aws: dict[str, str],
) -> None:
    ddb = moto_client("dynamodb", region_name="us-east-1")
    leap_day = datetime(2028, 2, 29, 12, tzinfo=UTC)
    first = StoredTestClock(ddb, TABLE_NAME, start=leap_day)
    assert timedelta(0) <= first.now() - leap_day < timedelta(seconds=5)

    # Another process started later, even with another start, reads the offset stored first.
    other_start = StoredTestClock(ddb, TABLE_NAME, start=datetime(2030, 1, 1, tzinfo=UTC))
    no_start = StoredTestClock(ddb, TABLE_NAME)
    for clock in (other_start, no_start):
        assert abs((clock.now() - first.now()).total_seconds()) < 2

    target = leap_day + timedelta(days=31)
    first.advance_to(target)
    restarted = StoredTestClock(ddb, TABLE_NAME, start=leap_day)
    assert abs((restarted.now() - target).total_seconds()) < 2  # advanced: the start is spent


def test_a_stored_test_clock_without_a_start_or_offset_is_the_wall_clock(
    aws: dict[str, str],
) -> None:
    ddb = moto_client("dynamodb", region_name="us-east-1")
    clock = StoredTestClock(ddb, TABLE_NAME)
    # moto runs in this process, so its clock is ours: an offset of zero, and nothing stored.
    assert clock._current_offset() == timedelta(0)
    assert "Item" not in ddb.get_item(TableName=TABLE_NAME, Key=TEST_CLOCK_KEY)


def test_deployed_stages_read_secrets_from_secrets_manager(aws: dict[str, str]) -> None:
    client = moto_client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(
        Name="billing/dev",
        SecretString=json.dumps(
            {
                "stripe_secret_key": "sk_test_dev",
                "webhook_secrets": ["whsec_a"],
                "platform_api_key": "dev-platform",
            }
        ),
    )["ARN"]
    settings = Settings.from_env({"BILLING_STAGE": "dev", "BILLING_SECRETS_ARN": arn})
    secrets = SecretsProvider(settings).get()
    assert secrets.platform_api_key == "dev-platform"
    assert secrets.webhook_secrets == ("whsec_a",)


def held_read(ddb: Any, at: str) -> Held:
    """Holds the first GetItem of the test clock's item at a botocore event until released
    (`at`: "before-call", before it reads; "after-call", after it read)."""
    held = Held()
    ddb.meta.events.register(f"{at}.dynamodb.GetItem", held.hold)
    return held


def test_a_thread_reading_the_stored_clock_does_not_wait_for_another_threads_read(
    aws: dict[str, str],
) -> None:
    ddb = moto_client("dynamodb", region_name="us-east-1")
    clock = StoredTestClock(ddb, TABLE_NAME, cache_seconds=0)
    cached = clock.now()
    held = held_read(ddb, "before-call")
    reader = threading.Thread(target=clock.now)
    reader.start()
    assert held.entered.wait(5)
    answered = threading.Event()
    other = threading.Thread(target=lambda: (clock.now(), answered.set()))
    other.start()
    try:
        # The other thread reads the cached offset while the first one's read is held.
        assert answered.wait(2)
        assert abs((clock.now() - cached).total_seconds()) < 2
    finally:
        held.release.set()
        reader.join(5)
        other.join(5)


def test_an_advance_during_a_read_of_the_stored_clock_keeps_its_offset(
    aws: dict[str, str],
) -> None:
    ddb = moto_client("dynamodb", region_name="us-east-1")
    StoredTestClock(ddb, TABLE_NAME).now()  # the offset as another process stored it
    clock = StoredTestClock(ddb, TABLE_NAME, cache_seconds=60)
    held = held_read(ddb, "after-call")  # the first read has the offset from before the advance
    reader = threading.Thread(target=clock.now)
    reader.start()
    assert held.entered.wait(5)
    target = clock.now() + timedelta(days=40)
    clock.advance_to(target)
    held.release.set()
    reader.join(5)
    # The read that began before the advance does not put the old offset back in the cache.
    assert abs((clock.now() - target).total_seconds()) < 2
