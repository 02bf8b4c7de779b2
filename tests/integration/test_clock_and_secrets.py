from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from chalicelib.adapters.clock import StoredTestClock
from chalicelib.adapters.secrets import SecretsProvider
from chalicelib.config import Settings
from chalicelib.domain.errors import InvalidRequest
from tests.integration.conftest import TABLE_NAME


def test_stored_test_clock_is_shared_through_dynamodb(aws: dict[str, str]) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
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


def test_deployed_stages_read_secrets_from_secrets_manager(aws: dict[str, str]) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
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
