from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

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


class _Refusal:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b'{"__type": "ValidationException", "message": "answered in the test"}'


def test_only_the_local_stacks_aws_clients_skip_the_model_check() -> None:
    """The tests and AWS get botocore's check of each request; the local stack's clients (an
    endpoint URL and BILLING_LEAN_AWS_CLIENT) send requests unchecked, signed all the same (moto's
    server finds the service from the signature's scope)."""
    from botocore.awsrequest import AWSResponse
    from botocore.exceptions import ClientError, ParamValidationError

    from chalicelib.adapters.aws import aws_client, reset_clients
    from infra.local.stack import LocalStack, StackConfig

    lean = {
        "BILLING_LEAN_AWS_CLIENT": LocalStack(StackConfig()).app_env()["BILLING_LEAN_AWS_CLIENT"]
    }
    local = {"BILLING_STAGE": "local", "AWS_ENDPOINT_URL": "http://127.0.0.1:5999"}
    sent: list[dict[str, str]] = []

    def answer_locally(request: Any, **_: Any) -> AWSResponse:
        sent.append(dict(request.headers))
        return AWSResponse(request.url, 400, {}, _Refusal())  # never leaves the process

    def client(env: dict[str, str]) -> Any:
        made = aws_client("dynamodb", Settings.from_env({"AWS_DEFAULT_REGION": "us-east-1", **env}))
        made.meta.events.register("before-send.dynamodb.*", answer_locally)
        return made

    malformed = {"TableName": "t", "Key": {"pk": {"S": 1}}}  # a number where a string goes
    well_formed = {"TableName": "t", "Key": {"pk": {"S": "1"}}}
    try:
        for checked_and_signed in (client(local), client({**lean, "BILLING_STAGE": "prod"})):
            with pytest.raises(ParamValidationError):
                checked_and_signed.get_item(**malformed)
            with pytest.raises(ClientError):
                checked_and_signed.get_item(**well_formed)
            assert sent.pop()["Authorization"].startswith(b"AWS4-HMAC-SHA256")
        with pytest.raises(ClientError):  # sent as it is: moto answers it
            client({**local, **lean}).get_item(**malformed)
        assert sent.pop()["Authorization"].startswith(b"AWS4-HMAC-SHA256")
    finally:
        reset_clients()
