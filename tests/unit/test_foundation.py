from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.adapters.clock import FixedClock
from chalicelib.config import Settings, secrets_from_env, secrets_from_json
from chalicelib.domain.errors import InvalidRequest
from chalicelib.observability import REDACTED, redact


def test_settings_come_from_the_environment_with_defaults() -> None:
    settings = Settings.from_env({"BILLING_STAGE": "dev", "BILLING_TEST_CLOCK": "true"})
    assert settings.stage == "dev"
    assert settings.table_name == "membership-billing-dev"
    assert settings.test_clock_enabled is True
    assert settings.is_local is False
    assert Settings.from_env({}).is_local is True


def test_the_test_clock_start_is_an_rfc3339_instant_in_utc() -> None:
    def start(text: str) -> datetime | None:
        return Settings.from_env({"BILLING_TEST_CLOCK_START": text}).test_clock_start

    assert Settings.from_env({}).test_clock_start is None
    assert start("") is None
    assert start("2028-02-29T12:00:00Z") == datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert start("2026-12-31T23:30:00-01:00") == datetime(2027, 1, 1, 0, 30, tzinfo=UTC)
    assert start("2026-01-31T12:00:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="BILLING_TEST_CLOCK_START"):
        start("next tuesday")


def test_local_secrets_come_from_env_with_api_md_defaults() -> None:
    secrets = secrets_from_env({})
    assert secrets.platform_api_key == "local-platform-key"
    assert secrets.stripe_secret_key == "sk_test_local"
    assert secrets.webhook_secrets == ("whsec_local",)
    rotated = secrets_from_env(
        {"STRIPE_WEBHOOK_SECRET": "whsec_new", "STRIPE_WEBHOOK_SECRET_PREVIOUS": "whsec_old"}
    )
    assert rotated.webhook_secrets == ("whsec_new", "whsec_old")


def test_deployed_secret_json_is_parsed() -> None:
    secrets = secrets_from_json(
        json.dumps(
            {"stripe_secret_key": "sk", "webhook_secrets": ["a", "b"], "platform_api_key": "p"}
        )
    )
    assert secrets.webhook_secrets == ("a", "b")
    assert secrets_from_json(
        json.dumps({"stripe_secret_key": "sk", "webhook_secrets": "a,b", "platform_api_key": "p"})
    ).webhook_secrets == ("a", "b")


def test_fixed_clock_moves_forward_only() -> None:
    start = datetime(2026, 1, 31, tzinfo=UTC)
    clock = FixedClock(start)
    assert clock.advance(timedelta(days=1)) == start + timedelta(days=1)
    with pytest.raises(InvalidRequest):
        clock.advance_to(start)


def test_redact_masks_card_data_and_secrets_recursively() -> None:
    logged = redact(
        {"card": {"number": "4242"}, "nested": [{"client_secret": "x", "ok": 1}], "id": "pay_1"}
    )
    assert logged == {
        "card": REDACTED,
        "nested": [{"client_secret": REDACTED, "ok": 1}],
        "id": "pay_1",
    }


def test_aws_clients_check_requests_against_the_model_unless_the_stage_turns_it_off() -> None:
    """The tests keep botocore's own check of each request; the local stack turns it off."""
    from botocore.exceptions import ClientError, ParamValidationError
    from moto import mock_aws

    from chalicelib.adapters.aws import aws_client, reset_clients
    from infra.local.stack import LocalStack, StackConfig

    base = {"BILLING_STAGE": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    checking = aws_client("dynamodb", Settings.from_env(base))
    local_stack_env = LocalStack(StackConfig()).app_env()
    trusting = aws_client(
        "dynamodb",
        Settings.from_env(
            {
                **base,
                "BILLING_VALIDATE_AWS_REQUESTS": local_stack_env["BILLING_VALIDATE_AWS_REQUESTS"],
            }
        ),
    )
    malformed = {"TableName": "t", "Key": {"pk": {"S": 1}}}  # a number where a string goes
    try:
        with mock_aws():
            with pytest.raises(ParamValidationError):
                checking.get_item(**malformed)
            with pytest.raises(ClientError):  # sent: moto answers (no such table)
                trusting.get_item(**malformed)
    finally:
        reset_clients()
