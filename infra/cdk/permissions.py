"""Least-privilege IAM: one role per Lambda function, with permissions chosen by its kind.

Every action is named (no `*`, no `dynamodb:*`) and every resource is ours: the table's ARN and
its index ARNs, the work queue, the secret, the function's own log group, and SES identities
only when sending as the configured sender. Scan is never granted (the code never scans).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.cdk.data import DataResources
from infra.cdk.functions import Kind, LambdaFunction
from infra.cdk.stage import StageSettings

TABLE_READ = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)
INDEX_READ = ("dynamodb:Query",)
TABLE_WRITE = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
# The sweeps write nothing but their own cursor items (jobs/sweeps.py).
CURSOR_WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem")
QUEUE_SEND = ("sqs:SendMessage", "sqs:GetQueueAttributes")
# What Lambda's SQS poller does with the function's role, plus the worker's own deletes.
QUEUE_CONSUME = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)
# The worker also sends the messages it defers again, with a delay (rate control, DESIGN 8.1).
WORKER_QUEUE = (*QUEUE_CONSUME, "sqs:SendMessage")
SECRET_READ = ("secretsmanager:GetSecretValue",)
EMAIL_SEND = ("ses:SendEmail",)
LOG_WRITE = ("logs:CreateLogStream", "logs:PutLogEvents")
# What Lambda's stream poller does with the function's role, on the table's stream alone
# (ListStreams takes no resource, so it is left out: the mapping names its stream).
STREAM_READ = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
BUS_PUT = ("events:PutEvents",)
DLQ_SEND = ("sqs:SendMessage",)


@dataclass(frozen=True)
class Access:
    table_write: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()
    secret: bool = False
    email: bool = False
    # Events to the platform: put on the stage's bus; read the table's stream and send failed
    # batches to the publisher's dead-letter queue (the stream publisher only).
    event_bus: bool = False
    stream: bool = False


# Everyone reads the table (the stored test clock lives there too).
ACCESS: dict[Kind, Access] = {
    # Routes and webhooks: read and write items, the platform key and Stripe key, welcome mails.
    Kind.API: Access(table_write=TABLE_WRITE, secret=True, email=True),
    # Resolves keys: reads items and the platform key, writes nothing.
    Kind.AUTHORIZER: Access(secret=True),
    # Sweeps: query the due index, save cursors, fan out to the work queue.
    Kind.SCHEDULE: Access(table_write=CURSOR_WRITE, queue=QUEUE_SEND),
    # One due item per message: charges through Stripe, writes, sends receipts.
    Kind.WORKER: Access(table_write=TABLE_WRITE, queue=WORKER_QUEUE, secret=True, email=True),
    # The stream publisher: event log, endpoint queues and attempts (writes), the bus, the
    # disabled-endpoint email and the dunning emails (which issue pay-now links); the secret's
    # platform key signs the event store's cursors (Container.platform_events). No work queue.
    Kind.PUBLISHER: Access(
        table_write=TABLE_WRITE, secret=True, email=True, event_bus=True, stream=True
    ),
}
# Functions whose work is not their kind's usual, by chalice name.
FUNCTION_ACCESS: dict[str, Access] = {
    # A schedule that feeds missed Stripe events through the webhook pipeline (Stripe key,
    # every write a webhook makes), not a sweep.
    "webhook_reconciliation": Access(table_write=TABLE_WRITE, secret=True, email=True),
    # A schedule that retries event deliveries whose backoff is over, not a sweep.
    # (It only sends queued deliveries: no bus, no stream; the secret, as the publisher.)
    "event_deliveries": Access(table_write=TABLE_WRITE, secret=True, email=True),
}


def access_of(function: LambdaFunction, stage: StageSettings) -> Access:
    access = FUNCTION_ACCESS.get(function.name, ACCESS[function.kind])
    if function.kind is Kind.API and stage.test_clock:
        # A test-clock advance publishes the outbox to the stage's bus before it answers
        # (jobs/test_clock.py), in the API's function.
        access = replace(access, event_bus=True)
    return access


def statements(
    function: LambdaFunction, stage: StageSettings, data: DataResources
) -> list[iam.PolicyStatement]:
    access = access_of(function, stage)
    stack = cdk.Stack.of(data)
    table_arn = data.table.table_arn
    found = [
        iam.PolicyStatement(
            actions=list(LOG_WRITE), resources=[_log_group_arn(stack, function, stage)]
        ),
        iam.PolicyStatement(actions=list(TABLE_READ + access.table_write), resources=[table_arn]),
        iam.PolicyStatement(
            actions=list(INDEX_READ),
            resources=[f"{table_arn}/index/{name}" for name in data.index_names],
        ),
    ]
    if access.queue:
        found.append(
            iam.PolicyStatement(actions=list(access.queue), resources=[data.work_queue.queue_arn])
        )
    if access.secret:
        found.append(
            iam.PolicyStatement(actions=list(SECRET_READ), resources=[data.secret.secret_arn])
        )
    if access.event_bus:
        found.append(
            iam.PolicyStatement(actions=list(BUS_PUT), resources=[data.event_bus.event_bus_arn])
        )
    if access.stream:
        stream_arn = data.table.table_stream_arn
        assert stream_arn is not None
        found.append(iam.PolicyStatement(actions=list(STREAM_READ), resources=[stream_arn]))
        found.append(
            iam.PolicyStatement(
                actions=list(DLQ_SEND), resources=[data.publisher_dead_letter_queue.queue_arn]
            )
        )
    if access.email:
        # SES checks every identity involved (sender and, in the sandbox, recipients), so the
        # resource is the account's identities and the condition pins the sender.
        found.append(
            iam.PolicyStatement(
                actions=list(EMAIL_SEND),
                resources=[stack.format_arn(service="ses", resource="identity", resource_name="*")],
                conditions={"StringEquals": {"ses:FromAddress": stage.email_sender}},
            )
        )
    return found


class FunctionRole(Construct):
    """The role of one function and its one policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        function: LambdaFunction,
        stage: StageSettings,
        data: DataResources,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{stage.function_name(function.name)} ({function.kind.value})",
        )
        self.policy = iam.Policy(
            self, "Policy", roles=[self.role], statements=statements(function, stage, data)
        )

    @property
    def cfn_policy(self) -> cdk.CfnResource:
        policy = self.policy.node.default_child
        assert isinstance(policy, cdk.CfnResource)
        return policy


def _log_group_arn(stack: cdk.Stack, function: LambdaFunction, stage: StageSettings) -> str:
    return stack.format_arn(
        service="logs",
        resource="log-group",
        resource_name=f"/aws/lambda/{stage.function_name(function.name)}:*",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
