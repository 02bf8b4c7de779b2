"""The stateful resources: the table, the work queue with its dead-letter queue, the secret.

All three are built from the definitions the application itself uses (`schema.py`,
`queues.py`, `config.secrets_from_json`), so the deployed shapes cannot drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.adapters import queues
from chalicelib.adapters.dynamodb import schema
from chalicelib.adapters.event_bus import bus_name_for
from infra.cdk.stage import StageSettings

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}
_PROJECTIONS = {
    "ALL": dynamodb.ProjectionType.ALL,
    "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY,
    "INCLUDE": dynamodb.ProjectionType.INCLUDE,
}
# The secret's JSON shape (config.secrets_from_json); the platform key is generated, the Stripe
# values are set by the operator (README, "Deploy").
SECRET_TEMPLATE = {"stripe_secret_key": "", "webhook_secrets": []}
GENERATED_SECRET_KEY = "platform_api_key"


class DataResources(Construct):
    def __init__(self, scope: Construct, construct_id: str, stage: StageSettings) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.RETAIN if stage.is_production else cdk.RemovalPolicy.DESTROY
        self.table = _table(self, stage, removal)
        self.index_names = [gsi["IndexName"] for gsi in schema.global_secondary_indexes()]
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=queues.dead_letter_queue_name(stage.name),
            retention_period=cdk.Duration.seconds(queues.DLQ_RETENTION_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        # Chalice binds the worker to the queue by this exact name (app.py).
        self.work_queue = sqs.Queue(
            self,
            "WorkQueue",
            queue_name=queues.work_queue_name(stage.name),
            visibility_timeout=cdk.Duration.seconds(queues.WORK_QUEUE_VISIBILITY_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=queues.MAX_RECEIVE_COUNT, queue=self.dead_letter_queue
            ),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        # Events to the platform: the stage's bus, and where stream batches the publisher
        # could not handle after every retry go (their stream positions, for a replay).
        self.event_bus = events.EventBus(self, "EventBus", event_bus_name=bus_name_for(stage.name))
        self.publisher_dead_letter_queue = sqs.Queue(
            self,
            "PublisherDeadLetterQueue",
            queue_name=f"{stage.stack_name}-publisher-dlq",
            retention_period=cdk.Duration.seconds(queues.DLQ_RETENTION_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.secret = secretsmanager.Secret(
            self,
            "Secrets",
            secret_name=stage.secret_name,
            description=(
                f"{stage.stack_name}: JSON {{stripe_secret_key, webhook_secrets: [..], "
                "platform_api_key}"
            ),
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps(SECRET_TEMPLATE),
                generate_string_key=GENERATED_SECRET_KEY,
                exclude_punctuation=True,
                password_length=48,
            ),
            removal_policy=removal,
        )


def _table(scope: Construct, stage: StageSettings, removal: cdk.RemovalPolicy) -> dynamodb.Table:
    definition = schema.create_table_kwargs(stage.table_name)
    types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    hash_key, range_key = _keys(definition["KeySchema"], types)
    if definition.get("BillingMode") != "PAY_PER_REQUEST":
        raise ValueError("schema.py must describe an on-demand (PAY_PER_REQUEST) table")
    table = dynamodb.Table(
        scope,
        "Table",
        table_name=stage.table_name,
        partition_key=hash_key,
        sort_key=range_key,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=schema.TTL_ATTRIBUTE,
        # The transactional outbox's feed: new outbox records reach the publisher in order.
        stream=dynamodb.StreamViewType.NEW_IMAGE,
        deletion_protection=stage.is_production,
        removal_policy=removal,
    )
    for index in definition["GlobalSecondaryIndexes"]:
        index_hash, index_range = _keys(index["KeySchema"], types)
        projection = index["Projection"]
        table.add_global_secondary_index(
            index_name=index["IndexName"],
            partition_key=index_hash,
            sort_key=index_range,
            projection_type=_PROJECTIONS[projection["ProjectionType"]],
            non_key_attributes=projection.get("NonKeyAttributes"),
        )
    return table


def _keys(
    key_schema: list[dict[str, str]], types: dict[str, str]
) -> tuple[dynamodb.Attribute, dynamodb.Attribute | None]:
    by_role: dict[str, Any] = {
        key["KeyType"]: dynamodb.Attribute(
            name=key["AttributeName"], type=_ATTRIBUTE_TYPES[types[key["AttributeName"]]]
        )
        for key in key_schema
    }
    return by_role["HASH"], by_role.get("RANGE")
