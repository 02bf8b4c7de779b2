"""What one deployed stage looks like, read from `.chalice/config.json` and the environment.

Chalice's own stage settings (environment variables, API Gateway stage, memory, timeouts) stay
in `.chalice/config.json` and reach the Lambdas through chalice's packager; this module adds
what only the infrastructure needs (retention, protection, who hears the alarms). No CDK import.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalicelib.config import LOCAL_STAGES, Settings

APP_NAME = "membership-billing"
PRODUCTION_STAGES = frozenset({"prod"})
DEFAULT_EMAIL_SENDER = "billing@example.com"
LOG_RETENTION_DAYS = {"prod": 90}
DEFAULT_LOG_RETENTION_DAYS = 14
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
PUBLISHABLE_KEY_PREFIXES = ("pk_live_", "pk_test_")
LIVE_PUBLISHABLE_KEY_PREFIX = "pk_live_"


class StageError(ValueError):
    """The stage cannot be deployed as asked."""


@dataclass(frozen=True)
class StageSettings:
    name: str
    api_gateway_stage: str
    email_sender: str
    # The public base URL of the API (`<it>/pay/<token>`), set on every function: the API, the
    # stream publisher (the "payment failed" email) and the worker (the last reminder) issue
    # pay-now links. A deploy-time value, never the API's own resource (the API function's
    # environment cannot reference the API that references the function).
    public_url: str
    # Stripe.js on the pay-now page and the console (card entry) needs the account's
    # publishable key; without it every emailed pay-now link shows a form that cannot pay.
    # Public by design, so a plain environment variable (the secret key stays in the secret).
    stripe_publishable_key: str
    alarm_email: str | None
    log_retention_days: int
    # `BILLING_TEST_CLOCK` of the stage, as the app reads it: `POST /v1/test-clock/advance`
    # publishes the outbox (to the stage's bus) before it answers.
    test_clock: bool = False

    @property
    def is_production(self) -> bool:
        return self.name in PRODUCTION_STAGES

    @property
    def stack_name(self) -> str:
        return f"{APP_NAME}-{self.name}"

    @property
    def table_name(self) -> str:
        # The same default as chalicelib.config.Settings, so logs and docs name one table.
        return f"{APP_NAME}-{self.name}"

    @property
    def secret_name(self) -> str:
        return f"{APP_NAME}/{self.name}"

    def function_name(self, chalice_name: str) -> str:
        """The Lambda's name: chalice's own convention, `<app>-<stage>-<function>`."""
        return f"{APP_NAME}-{self.name}-{chalice_name}"


def load_stage(name: str, source_dir: Path, env: Mapping[str, str] | None = None) -> StageSettings:
    """Settings of stage `name`; it must be a deployable stage of `.chalice/config.json`."""
    environ = os.environ if env is None else env
    if name in LOCAL_STAGES:
        raise StageError(
            f"stage {name!r} reads its secrets from the environment and cannot be deployed"
        )
    config = _chalice_config(source_dir)
    stages: dict[str, Any] = config.get("stages", {})
    if name not in stages:
        known = ", ".join(sorted(s for s in stages if s not in LOCAL_STAGES))
        raise StageError(f"no stage {name!r} in .chalice/config.json (deployable: {known})")
    stage_config: dict[str, Any] = stages[name]
    variables = {**config.get("environment_variables", {})}
    variables.update(stage_config.get("environment_variables", {}))
    declared = variables.get("BILLING_STAGE", name)
    if declared != name:
        raise StageError(
            f".chalice/config.json stage {name!r} sets BILLING_STAGE={declared!r}; they must match"
        )
    sender = (
        environ.get("BILLING_EMAIL_SENDER")
        or variables.get("BILLING_EMAIL_SENDER")
        or DEFAULT_EMAIL_SENDER
    )
    if name in PRODUCTION_STAGES and sender == DEFAULT_EMAIL_SENDER:
        raise StageError(
            f"stage {name!r} needs BILLING_EMAIL_SENDER, an address SES verified for this account"
        )
    public_url = _public_url(
        name, environ.get("BILLING_PUBLIC_URL") or variables.get("BILLING_PUBLIC_URL") or ""
    )
    publishable_key = _publishable_key(
        name,
        environ.get("STRIPE_PUBLISHABLE_KEY") or variables.get("STRIPE_PUBLISHABLE_KEY") or "",
    )
    return StageSettings(
        name=name,
        api_gateway_stage=str(
            stage_config.get("api_gateway_stage", config.get("api_gateway_stage", "api"))
        ),
        email_sender=sender,
        public_url=public_url,
        stripe_publishable_key=publishable_key,
        alarm_email=environ.get("BILLING_ALARM_EMAIL") or None,
        log_retention_days=LOG_RETENTION_DAYS.get(name, DEFAULT_LOG_RETENTION_DAYS),
        test_clock=Settings.from_env({**variables, "BILLING_STAGE": name}).test_clock_enabled,
    )


def _public_url(stage: str, value: str) -> str:
    """The stage's BILLING_PUBLIC_URL, checked: an https base URL (a path such as API Gateway's
    stage is fine; no query, no fragment) on a public host, without its trailing slash."""
    need = (
        f"stage {stage!r} needs BILLING_PUBLIC_URL, the https base URL its emailed pay-now "
        "links point to (the API's custom domain, e.g. https://billing.example.org, or its "
        "API Gateway URL, https://<id>.execute-api.<region>.amazonaws.com/api)"
    )
    if not value.strip():
        raise StageError(need)
    parts = urlsplit(value.strip())
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.hostname in LOOPBACK_HOSTS
        or parts.query
        or parts.fragment
    ):
        raise StageError(f"{need}; got {value!r}")
    return value.strip().rstrip("/")


def _publishable_key(stage: str, value: str) -> str:
    """The stage's STRIPE_PUBLISHABLE_KEY, checked: a publishable key (never a secret or
    restricted key, which would sit in plain text in the functions' configuration), and a
    live one for a production stage (a test key there cannot take a real card)."""
    key = value.strip()
    need = (
        f"stage {stage!r} needs STRIPE_PUBLISHABLE_KEY, the Stripe account's publishable key "
        "(pk_live_... or pk_test_...) that the pay-now page and the console enter cards with"
    )
    if not key:
        raise StageError(need)
    if not key.startswith(PUBLISHABLE_KEY_PREFIXES):
        raise StageError(f"{need}; got a value starting {key[:3]!r} (never put a secret key here)")
    if stage in PRODUCTION_STAGES and not key.startswith(LIVE_PUBLISHABLE_KEY_PREFIX):
        raise StageError(f"{need}; stage {stage!r} takes real cards: a pk_live_ key")
    return key


def _chalice_config(source_dir: Path) -> dict[str, Any]:
    path = source_dir / ".chalice" / "config.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data
