"""Which stages can be deployed, and how the stack sorts chalice's functions (no synthesis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chalice import Chalice, Rate
from chalice.app import CloudWatchEvent, S3Event, SQSEvent

from chalicelib.adapters.queues import work_queue_name
from infra.cdk.functions import Kind, UnsupportedFunction, has_route, lambda_functions
from infra.cdk.stage import StageError, load_stage
from tests.infra.conftest import REPO_ROOT

WORK_QUEUE = work_queue_name("dev")
TEST_KEY = "pk_test_51ClubExample"
DEPLOY_ENV = {
    "BILLING_PUBLIC_URL": "https://billing.club.example",
    "STRIPE_PUBLISHABLE_KEY": TEST_KEY,
}
LIVE = {**DEPLOY_ENV, "STRIPE_PUBLISHABLE_KEY": "pk_live_51ClubExample"}


def test_dev_and_prod_come_from_the_chalice_config() -> None:
    dev = load_stage("dev", REPO_ROOT, env=DEPLOY_ENV)
    assert (dev.name, dev.stack_name, dev.table_name) == (
        "dev",
        "membership-billing-dev",
        "membership-billing-dev",
    )
    assert dev.api_gateway_stage == "api"
    assert not dev.is_production
    assert dev.function_name("worker") == "membership-billing-dev-worker"
    assert dev.stripe_publishable_key == TEST_KEY
    prod = load_stage(
        "prod", REPO_ROOT, env={"BILLING_EMAIL_SENDER": "billing@club.example", **LIVE}
    )
    assert prod.is_production
    # BILLING_TEST_CLOCK of .chalice/config.json, read as the app reads it.
    assert (dev.test_clock, prod.test_clock) == (True, False)
    assert prod.email_sender == "billing@club.example"
    assert prod.log_retention_days > dev.log_retention_days


def test_prod_needs_a_real_sender_address() -> None:
    with pytest.raises(StageError, match="BILLING_EMAIL_SENDER"):
        load_stage("prod", REPO_ROOT, env=LIVE)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_deployed_stage_needs_the_publishable_key_its_pay_page_takes_cards_with(
    stage: str,
) -> None:
    """Without it the pay page's Stripe.js cannot start: every emailed pay-now link would open
    a form that cannot pay."""
    env = {"BILLING_EMAIL_SENDER": "billing@club.example", **DEPLOY_ENV}
    del env["STRIPE_PUBLISHABLE_KEY"]
    with pytest.raises(StageError, match="STRIPE_PUBLISHABLE_KEY"):
        load_stage(stage, REPO_ROOT, env=env)


@pytest.mark.parametrize("key", ["sk_live_51Secret", "rk_live_51Restricted", "51NoPrefix"])
def test_a_publishable_key_that_is_a_secret_or_no_key_is_refused(key: str) -> None:
    """A secret key would sit in plain text in every function's configuration."""
    with pytest.raises(StageError, match="STRIPE_PUBLISHABLE_KEY") as refused:
        load_stage("dev", REPO_ROOT, env={**DEPLOY_ENV, "STRIPE_PUBLISHABLE_KEY": key})
    assert key not in str(refused.value)


def test_prod_takes_cards_with_a_live_publishable_key() -> None:
    env = {"BILLING_EMAIL_SENDER": "billing@club.example", **DEPLOY_ENV}
    with pytest.raises(StageError, match="pk_live_"):
        load_stage("prod", REPO_ROOT, env=env)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_deployed_stage_needs_the_public_url_its_emails_link_to(stage: str) -> None:
    """Pay-now links go out in emails from the API, the publisher and the worker: a stage
    without the URL would issue none (503), so it is not deployed at all."""
    with pytest.raises(StageError, match="BILLING_PUBLIC_URL"):
        load_stage(stage, REPO_ROOT, env={"BILLING_EMAIL_SENDER": "billing@club.example"})


@pytest.mark.parametrize(
    "url",
    [
        "http://billing.club.example",  # a link that carries a credential goes over https only
        "billing.club.example",
        "https://",
        "https://billing.club.example/api?stage=1",
        "https://billing.club.example/#pay",
        "https://127.0.0.1:8000",
        "https://localhost/api",
    ],
)
def test_a_public_url_that_is_no_public_https_base_is_refused(url: str) -> None:
    with pytest.raises(StageError, match="BILLING_PUBLIC_URL"):
        load_stage("dev", REPO_ROOT, env={"BILLING_PUBLIC_URL": url})


def test_the_public_url_comes_from_the_deploy_or_the_chalice_stage(tmp_path: Path) -> None:
    (tmp_path / ".chalice").mkdir()
    config = {
        "version": "2.0",
        "app_name": "membership-billing",
        "stages": {
            "dev": {
                "environment_variables": {
                    "BILLING_STAGE": "dev",
                    "BILLING_PUBLIC_URL": "https://billing.dev.club.example/",
                    "STRIPE_PUBLISHABLE_KEY": TEST_KEY,
                }
            }
        },
    }
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    from_config = load_stage("dev", tmp_path, env={})
    assert from_config.public_url == "https://billing.dev.club.example"  # no trailing slash
    at_deploy = load_stage(
        "dev",
        tmp_path,
        env={"BILLING_PUBLIC_URL": "https://abc123.execute-api.us-east-1.amazonaws.com/api"},
    )
    assert at_deploy.public_url == "https://abc123.execute-api.us-east-1.amazonaws.com/api"


@pytest.mark.parametrize("stage", ["local", "test"])
def test_local_stages_are_never_deployed(stage: str) -> None:
    with pytest.raises(StageError, match="cannot be deployed"):
        load_stage(stage, REPO_ROOT, env={})


def test_an_unknown_stage_names_the_deployable_ones() -> None:
    with pytest.raises(StageError, match=r"no stage 'qa'.*dev, prod"):
        load_stage("qa", REPO_ROOT, env={})


def test_a_stage_whose_billing_stage_disagrees_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".chalice").mkdir()
    config = {
        "version": "2.0",
        "app_name": "membership-billing",
        "stages": {"dev": {"environment_variables": {"BILLING_STAGE": "prod"}}},
    }
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    with pytest.raises(StageError, match="must match"):
        load_stage("dev", tmp_path, env={})


def _app_with_every_kind(queue: str = WORK_QUEUE) -> Chalice:
    app = Chalice(app_name="sample")

    @app.authorizer()
    def key_authorizer(auth_request: object) -> None: ...

    @app.route("/webhooks/stripe", methods=["POST"])
    def webhook() -> None: ...

    @app.schedule(Rate(5, unit=Rate.MINUTES), name="renewals")
    def renewals(event: CloudWatchEvent) -> None: ...

    @app.on_sqs_message(queue=queue, name="worker")
    def worker(event: SQSEvent) -> None: ...

    return app


def test_functions_are_sorted_by_kind_with_chalices_resource_names() -> None:
    found = {
        f.name: (f.kind, f.logical_id) for f in lambda_functions(_app_with_every_kind(), WORK_QUEUE)
    }
    assert found == {
        "api_handler": (Kind.API, "APIHandler"),
        "key_authorizer": (Kind.AUTHORIZER, "KeyAuthorizer"),
        "renewals": (Kind.SCHEDULE, "Renewals"),
        "worker": (Kind.WORKER, "Worker"),
    }
    app = _app_with_every_kind()
    assert has_route(app, "/webhooks/stripe", "POST")
    assert not has_route(app, "/webhooks/stripe", "GET")


def test_a_worker_on_another_queue_stops_the_synth() -> None:
    # E.g. app.py imported without BILLING_STAGE: it would listen to the local stage's queue.
    app = _app_with_every_kind(queue=work_queue_name("local"))
    with pytest.raises(UnsupportedFunction, match="membership-billing-local-work"):
        lambda_functions(app, WORK_QUEUE)


def test_a_function_without_a_permission_set_stops_the_synth() -> None:
    app = _app_with_every_kind()

    @app.on_s3_event(bucket="uploads")
    def uploaded(event: S3Event) -> None: ...

    with pytest.raises(UnsupportedFunction, match="uploaded"):
        lambda_functions(app, WORK_QUEUE)

    pure = Chalice(app_name="pure")

    @pure.lambda_function()
    def anything(event: object, context: object) -> None: ...

    with pytest.raises(UnsupportedFunction, match="anything"):
        lambda_functions(pure, WORK_QUEUE)
