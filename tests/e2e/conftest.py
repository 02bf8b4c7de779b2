"""The real local stack (moto server, localstripe, chalice local) on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.stack import LocalStack, StackConfig, free_port
from tests.support.clock_start import clock_start_text


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        billing_port=free_port(),
        webhook_port=free_port(),
        stripe_port=free_port(),
        moto_port=free_port(),
        platform_api_key="e2e-platform-key",
        webhook_secret="whsec_e2e",
        run_scheduler=False,
        test_clock_start=clock_start_text(),
        log_dir=Path(tmp_path_factory.mktemp("stack-logs")),
    )
    with LocalStack(config) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `ledger_last` compare the whole run's ledger with Stripe: they run last."""
    items.sort(key=lambda item: item.get_closest_marker("ledger_last") is not None)
