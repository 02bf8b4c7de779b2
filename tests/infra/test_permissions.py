"""Least privilege, checked on the synthesized template for whatever functions app.py declares:
one role per function, every action named, every resource ours."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.adapters import queues
from chalicelib.adapters.dynamodb import schema
from chalicelib.bootstrap import Container
from chalicelib.config import Settings
from infra.cdk.permissions import FUNCTION_ACCESS
from tests.infra.conftest import Synthesized
from tests.support.moto_clients import moto_client

ALLOWED_SERVICES = {"dynamodb", "sqs", "secretsmanager", "ses", "logs", "events"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policies(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Each function's logical id -> its one AWS::IAM::Policy (properties)."""
    role_of = {
        logical_id: fn["Properties"]["Role"]["Fn::GetAtt"][0]
        for logical_id, fn in synthesized.functions.items()
    }
    policies_of_role: dict[str, list[dict[str, Any]]] = {}
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        (role,) = policy["Properties"]["Roles"]
        policies_of_role.setdefault(role["Ref"], []).append(policy["Properties"])
    found = {}
    for function_id, role_id in role_of.items():
        (policy,) = policies_of_role[role_id]
        found[function_id] = policy
    return found


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
    return statements


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in _statements(policy) for a in _listed(s["Action"])}


def _logical_ids(synthesized: Synthesized) -> dict[str, str]:
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    secret_id, _ = synthesized.only("AWS::SecretsManager::Secret")
    work_id = next(
        logical_id
        for logical_id, q in synthesized.of_type("AWS::SQS::Queue").items()
        if q["Properties"]["QueueName"] == queues.work_queue_name(synthesized.stage)
    )
    bus_id, _ = synthesized.only("AWS::Events::EventBus")
    publisher_dlq = next(
        logical_id
        for logical_id, q in synthesized.of_type("AWS::SQS::Queue").items()
        if q["Properties"]["QueueName"].endswith("-publisher-dlq")
    )
    return {
        "table": table_id,
        "secret": secret_id,
        "work_queue": work_id,
        "bus": bus_id,
        "publisher_dlq": publisher_dlq,
    }


def test_every_function_has_its_own_role_with_nothing_attached_but_its_policy(
    synthesized: Synthesized,
) -> None:
    roles = synthesized.of_type("AWS::IAM::Role")
    used = [fn["Properties"]["Role"]["Fn::GetAtt"] for fn in synthesized.functions.values()]
    assert all(attribute == "Arn" and role in roles for role, attribute in used)
    assert len({role for role, _ in used}) == len(synthesized.functions) == len(roles)
    for role in roles.values():
        props = role["Properties"]
        assert "ManagedPolicyArns" not in props
        assert "Policies" not in props
        (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert set(_policies(synthesized)) == set(synthesized.functions)


def test_no_policy_has_a_wildcard_action_or_a_foreign_resource(synthesized: Synthesized) -> None:
    ids = _logical_ids(synthesized)
    table_arn = {"Fn::GetAtt": [ids["table"], "Arn"]}
    index_arns = [{"Fn::Join": ["", [table_arn, f"/index/{name}"]]} for name in schema.GSI_KEYS]
    policies = _policies(synthesized)
    assert len(policies) == len(synthesized.of_type("AWS::IAM::Policy"))
    for function_id, policy in policies.items():
        function_name = synthesized.functions[function_id]["Properties"]["FunctionName"]
        for statement in _statements(policy):
            assert statement["Effect"] == "Allow"
            actions = _listed(statement["Action"])
            resources = _listed(statement["Resource"])
            services = {action.split(":")[0] for action in actions}
            assert len(services) == 1 and services <= ALLOWED_SERVICES, actions
            assert not any("*" in action for action in actions), (function_id, actions)
            assert "dynamodb:Scan" not in actions
            service = services.pop()
            if service == "dynamodb":
                if actions == ["dynamodb:Query"] and resources != [table_arn]:
                    assert resources == index_arns, resources
                elif "dynamodb:GetRecords" in actions:  # the stream publisher
                    assert resources == [{"Fn::GetAtt": [ids["table"], "StreamArn"]}]
                else:
                    assert resources == [table_arn], resources
            elif service == "sqs":
                assert resources in (
                    [{"Fn::GetAtt": [ids["work_queue"], "Arn"]}],
                    [{"Fn::GetAtt": [ids["publisher_dlq"], "Arn"]}],
                )
            elif service == "events":
                assert actions == ["events:PutEvents"]
                assert resources == [{"Fn::GetAtt": [ids["bus"], "Arn"]}]
            elif service == "secretsmanager":
                assert actions == ["secretsmanager:GetSecretValue"]
                assert resources == [{"Ref": ids["secret"]}]
            elif service == "ses":
                assert actions == ["ses:SendEmail"]
                assert set(statement["Condition"]["StringEquals"]) == {"ses:FromAddress"}
            else:
                (arn,) = resources
                assert arn["Fn::Join"][1][-1] == f":log-group:/aws/lambda/{function_name}:*"


def test_each_kind_of_function_gets_only_what_its_work_needs(synthesized: Synthesized) -> None:
    policies = _policies(synthesized)
    consume = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}

    api = _actions(policies["APIHandler"])
    assert writes <= api
    assert {"secretsmanager:GetSecretValue", "ses:SendEmail"} <= api
    assert not any(a.startswith("sqs:") for a in api)

    authorizer_handlers = {
        logical_id
        for logical_id, fn in synthesized.functions.items()
        if fn["Properties"]["Handler"].endswith("_authorizer")
    }
    assert authorizer_handlers
    for logical_id in authorizer_handlers:
        actions = _actions(policies[logical_id])
        assert "dynamodb:GetItem" in actions and "secretsmanager:GetSecretValue" in actions
        assert not actions & (writes | {"dynamodb:BatchWriteItem", "ses:SendEmail"})
        assert not any(a.startswith("sqs:") for a in actions)

    prefix = f"membership-billing-{synthesized.stage}-"
    for logical_id, fn in synthesized.functions.items():
        event_types = {e["Type"] for e in fn["Properties"].get("Events", {}).values()}
        actions = _actions(policies[logical_id])
        special = FUNCTION_ACCESS.get(fn["Properties"]["FunctionName"].removeprefix(prefix))
        if "SQS" in event_types:
            assert consume <= actions
            # Deferred messages (rate control) go back to the work queue as new messages.
            assert "sqs:SendMessage" in actions
        elif "Schedule" in event_types and special is None:
            # A sweep: reads the due index, saves its cursor, fans out to the work queue.
            assert {"dynamodb:Query", "dynamodb:PutItem", "sqs:SendMessage"} <= actions
            secret_or_mail = {"secretsmanager:GetSecretValue", "ses:SendEmail"}
            assert not actions & (consume | {"dynamodb:DeleteItem"} | secret_or_mail)
        else:
            assert not actions & consume, logical_id
        if special is not None:
            assert set(special.table_write) <= actions
            assert ("secretsmanager:GetSecretValue" in actions) is special.secret
            assert ("ses:SendEmail" in actions) is special.email
            assert set(special.queue) == {a for a in actions if a.startswith("sqs:")}


def test_on_a_test_clock_stage_the_api_may_put_the_advances_events_on_the_bus(
    synthesized: Synthesized,
) -> None:
    """`POST /v1/test-clock/advance` (dev: BILLING_TEST_CLOCK=true) publishes the outbox
    before it answers (jobs/test_clock.py), from the API's function: the stage's bus only.
    Without it every advance's publication failed on AccessDenied and was retried record by
    record inside the API's 29 s."""
    bus_id = _logical_ids(synthesized)["bus"]
    assert (
        synthesized.resources["APIHandler"]["Properties"]["Environment"]["Variables"][
            "BILLING_TEST_CLOCK"
        ]
        == "true"
    )
    puts = [
        statement
        for statement in _statements(_policies(synthesized)["APIHandler"])
        if "events:PutEvents" in _listed(statement["Action"])
    ]
    assert puts == [
        {
            "Action": "events:PutEvents",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [bus_id, "Arn"]},
        }
    ]


def test_only_the_stream_publisher_reads_the_stream_and_puts_on_the_bus(
    synthesized: Synthesized,
) -> None:
    """(And, on a test-clock stage, the API: the test above.)"""
    policies = _policies(synthesized)
    bus_id, _ = synthesized.only("AWS::Events::EventBus")
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    prefix = f"membership-billing-{synthesized.stage}-"
    for logical_id, fn in synthesized.functions.items():
        name = fn["Properties"]["FunctionName"].removeprefix(prefix)
        actions = _actions(policies[logical_id])
        streams = {e["Type"] for e in fn["Properties"].get("Events", {}).values()}
        if "DynamoDB" in streams:
            assert {"dynamodb:GetRecords", "dynamodb:GetShardIterator"} <= actions
            assert {"events:PutEvents", "sqs:SendMessage"} <= actions
        else:
            if logical_id != "APIHandler":
                assert not {a for a in actions if a.startswith("events:")}, name
            assert "dynamodb:GetRecords" not in actions, name
        for statement in _statements(policies[logical_id]):
            granted = statement["Action"]
            granted = granted if isinstance(granted, list) else [granted]
            if "events:PutEvents" in granted:
                assert statement["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}
            if "dynamodb:GetRecords" in granted:
                assert statement["Resource"] == {"Fn::GetAtt": [table_id, "StreamArn"]}


def test_building_the_event_publisher_reads_the_stages_secret() -> None:
    """Why the publisher functions get the secret: `Container.event_publisher` (the stream
    publisher, the `event_deliveries` schedule) builds the event store, whose cursors are signed
    with the platform key, read from Secrets Manager. With the secret missing it cannot be
    built; with it there, it can."""
    with mock_aws():
        secrets = moto_client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="membership-billing/dev", SecretString="{}")["ARN"]
        settings = Settings.from_env(
            {
                "BILLING_STAGE": "dev",
                "BILLING_SECRETS_ARN": arn,
                "AWS_DEFAULT_REGION": "us-east-1",
                "BILLING_PUBLIC_URL": "https://billing.dev.club.example",
            }
        )
        secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            _ = Container(settings).event_publisher
        arn = secrets.create_secret(
            Name="membership-billing/dev",
            SecretString=json.dumps(
                {"stripe_secret_key": "sk_test_1", "webhook_secrets": [], "platform_api_key": "k"}
            ),
        )["ARN"]
        settings = replace(settings, secrets_arn=arn)
        assert Container(settings).event_publisher is not None


def test_the_publisher_functions_may_read_the_secret_and_send_the_dunning_emails(
    synthesized: Synthesized,
) -> None:
    """The stream publisher (dunning emails, its event store) and the `event_deliveries`
    schedule (the same publisher) read the secret; the publisher and the worker (the last
    reminder) send email as the stage's sender."""
    policies = _policies(synthesized)
    secret_id = _logical_ids(synthesized)["secret"]
    prefix = f"membership-billing-{synthesized.stage}-"
    checked = set()
    for logical_id, fn in synthesized.functions.items():
        name = fn["Properties"]["FunctionName"].removeprefix(prefix)
        sources = {e["Type"] for e in fn["Properties"].get("Events", {}).values()}
        statements = _statements(policies[logical_id])
        if "DynamoDB" in sources or name == "event_deliveries":
            [read] = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
            assert read["Resource"] == {"Ref": secret_id}
            checked.add(name)
        if "DynamoDB" in sources or "SQS" in sources:
            [send] = [s for s in statements if s["Action"] == "ses:SendEmail"]
            assert send["Condition"] == {
                "StringEquals": {
                    "ses:FromAddress": fn["Properties"]["Environment"]["Variables"][
                        "BILLING_EMAIL_SENDER"
                    ]
                }
            }
            checked.add(name)
    assert {"event_deliveries", "worker"} < checked and len(checked) == 3, checked
