"""The stack's own constructs, built in-process (Template.from_stack), for what differs by stage."""

from __future__ import annotations

import json
from dataclasses import replace

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from chalicelib.adapters import queues
from infra.cdk.api_gateway import GATEWAY_MESSAGE, encode_resource_path, error_body
from infra.cdk.data import DataResources
from infra.cdk.functions import Kind, LambdaFunction
from infra.cdk.permissions import FunctionRole
from infra.cdk.stage import StageSettings


def _stage(name: str) -> StageSettings:
    return StageSettings(
        name=name,
        api_gateway_stage="api",
        email_sender="billing@club.example",
        public_url="https://billing.club.example",
        stripe_publishable_key="pk_test_51ClubExample",
        alarm_email=None,
        log_retention_days=14,
    )


def _stack() -> cdk.Stack:
    # CDK's own template validation adds ~20 s to a synth; cfn-lint checks the real template.
    return cdk.Stack(cdk.App(builtin_cloud_formation_validation=False), "Test")


def _data_template(stage_name: str) -> Template:
    stack = _stack()
    DataResources(stack, "Data", _stage(stage_name))
    return Template.from_stack(stack)


def test_production_data_is_protected_and_retained() -> None:
    template = _data_template("prod")
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": Match.object_like({"DeletionProtectionEnabled": True}),
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    template.has_resource("AWS::SecretsManager::Secret", {"DeletionPolicy": "Retain"})


def test_other_stages_can_be_torn_down() -> None:
    template = _data_template("dev")
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": Match.object_like({"DeletionProtectionEnabled": False}),
            "DeletionPolicy": "Delete",
        },
    )
    template.has_resource("AWS::SecretsManager::Secret", {"DeletionPolicy": "Delete"})


def test_queues_take_their_names_and_limits_from_queues_py() -> None:
    template = _data_template("prod")
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": queues.work_queue_name("prod"),
            "VisibilityTimeout": queues.WORK_QUEUE_VISIBILITY_SECONDS,
            "RedrivePolicy": {"maxReceiveCount": queues.MAX_RECEIVE_COUNT},
        },
    )
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": queues.dead_letter_queue_name("prod"),
            "MessageRetentionPeriod": queues.DLQ_RETENTION_SECONDS,
        },
    )
    assert queues.WORK_QUEUE_VISIBILITY_SECONDS >= 6 * queues.WORKER_TIMEOUT_SECONDS


def _role_actions(kind: Kind, stage: StageSettings) -> set[str]:
    """The actions a function of `kind` is granted on `stage`."""
    stack = _stack()
    data = DataResources(stack, "Data", stage)
    FunctionRole(stack, "Access", LambdaFunction("fn", kind, "Fn"), stage, data)
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    return {
        action
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }


@pytest.mark.parametrize(
    ("kind", "present", "absent"),
    [
        (
            # SendMessage: deferred messages go back to the work queue (rate control).
            Kind.WORKER,
            {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage", "ses:SendEmail"},
            {"events:PutEvents"},
        ),
        (Kind.SCHEDULE, {"sqs:SendMessage", "dynamodb:PutItem"}, {"secretsmanager:GetSecretValue"}),
        (
            Kind.AUTHORIZER,
            {"dynamodb:GetItem", "secretsmanager:GetSecretValue"},
            {"dynamodb:PutItem"},
        ),
    ],
)
def test_a_role_grants_its_kind_and_nothing_of_another(
    kind: Kind, present: set[str], absent: set[str]
) -> None:
    actions = _role_actions(kind, _stage("dev"))
    assert present <= actions
    assert not absent & actions


def test_the_api_puts_on_the_bus_only_where_a_test_clock_advance_publishes() -> None:
    assert "events:PutEvents" not in _role_actions(Kind.API, _stage("prod"))
    assert "events:PutEvents" in _role_actions(Kind.API, replace(_stage("dev"), test_clock=True))


def test_error_bodies_are_the_api_envelope() -> None:
    fixed = json.loads(error_body("unauthorized", 'Missing "key".'))
    assert fixed == {"error": {"type": "unauthorized", "message": 'Missing "key".', "details": []}}
    passed_through = error_body("internal", None)
    assert GATEWAY_MESSAGE in passed_through
    rendered = passed_through.replace(GATEWAY_MESSAGE, json.dumps("Internal server error"))
    assert json.loads(rendered)["error"]["message"] == "Internal server error"


def test_method_setting_paths_escape_slashes() -> None:
    assert encode_resource_path("/webhooks/stripe") == "/~1webhooks~1stripe"
