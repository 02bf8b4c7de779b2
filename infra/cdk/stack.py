"""The whole deployed system for one stage: chalice's Lambdas and API plus everything they use.

`chalice.cdk.Chalice` packages app.py (the API, the authorizer, the schedules, the SQS worker)
into a SAM template; this stack adds the table, queues, secret, roles, log groups and alarms,
and then adjusts chalice's resources: each function gets its own role, name, log group and
error alarm, the worker a timeout the queue's visibility timeout covers six times over and a
concurrency sized from the Stripe budgets, each sweep a timeout that ends just before its next
tick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sam as sam
from chalice.cdk import Chalice
from chalice.utils import to_cfn_resource_name
from constructs import Construct

from chalicelib.adapters import queues
from chalicelib.jobs import event_publisher, reconciliation, schedules
from chalicelib.jobs.registry import SWEEP_GROUPS
from infra.cdk.api_gateway import configure_rest_api
from infra.cdk.data import DataResources
from infra.cdk.functions import (
    REST_API_LOGICAL_ID,
    Kind,
    LambdaFunction,
    has_route,
    lambda_functions,
    load_chalice_app,
)
from infra.cdk.monitoring import Monitoring
from infra.cdk.permissions import FunctionRole
from infra.cdk.stage import StageSettings

WEBHOOK_PATH = "/webhooks/stripe"
# Chalice must not create roles; every function's role is replaced by its own, and a function
# still pointing here after that is one the stack did not secure (the synth stops).
UNASSIGNED_ROLE_ARN = "arn:aws:iam::000000000000:role/assigned-by-infra-cdk"
PUBLISHER_TIMEOUT_SECONDS = 300
PUBLISHER_RETRIES = 10
# Lambda keeps an asynchronous event (a schedule's tick) at most this long, at least this.
MAX_EVENT_AGE_SECONDS = 6 * 3600
MIN_EVENT_AGE_SECONDS = 60


class BillingStack(cdk.Stack):
    def __init__(
        self, scope: Construct, stage: StageSettings, source_dir: Path, **kwargs: Any
    ) -> None:
        # The construct id is the stage name: chalice.cdk packages the app for the chalice
        # stage named like the stack's construct path, i.e. `.chalice/config.json`'s stage.
        super().__init__(
            scope,
            stage.name,
            stack_name=stage.stack_name,
            description=f"Membership billing ({stage.name}): API, jobs, table, queues, alarms",
            **kwargs,
        )
        self.stage = stage
        chalice_app = load_chalice_app(source_dir, stage.name)
        self.functions = lambda_functions(chalice_app, queues.work_queue_name(stage.name))
        self.data = DataResources(self, "Data", stage)
        self.monitoring = Monitoring(self, "Monitoring", stage)
        self.chalice = Chalice(
            self, "Chalice", source_dir=str(source_dir), stage_config=self._chalice_config()
        )
        for function in self.functions:
            self._configure(function)
        self._refuse_unconfigured()
        self.monitoring.dead_letters(self.data.dead_letter_queue)
        self.monitoring.work_backlog(self.data.work_queue)
        self.monitoring.dead_letters(
            self.data.publisher_dead_letter_queue,
            "PublisherDeadLetterQueueNotEmpty",
            "publisher-dlq-not-empty",
            "A stream batch of outbox records failed every retry (events not published).",
        )
        if chalice_app.routes:
            webhook = has_route(chalice_app, WEBHOOK_PATH, "POST")
            api = self.chalice.get_resource(REST_API_LOGICAL_ID)
            assert isinstance(api, sam.CfnApi)
            configure_rest_api(api, stage.stack_name, [WEBHOOK_PATH] if webhook else [])
            self.monitoring.api_5xx(stage.stack_name)
            if webhook:
                self.monitoring.api_5xx(stage.stack_name, WEBHOOK_PATH)
                self._output(
                    "WebhookUrl",
                    cdk.Fn.sub(
                        "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
                        f"/{stage.api_gateway_stage}{WEBHOOK_PATH}"
                    ),
                )
        self._output("TableName", self.data.table.table_name)
        self._output("WorkQueueUrl", self.data.work_queue.queue_url)
        self._output("DeadLetterQueueUrl", self.data.dead_letter_queue.queue_url)
        self._output("SecretArn", self.data.secret.secret_arn)
        self._output("AlarmTopicArn", self.monitoring.topic.topic_arn)

    def _chalice_config(self) -> dict[str, Any]:
        return {
            "environment_variables": {
                "BILLING_STAGE": self.stage.name,
                "BILLING_TABLE_NAME": self.data.table.table_name,
                "BILLING_WORK_QUEUE_URL": self.data.work_queue.queue_url,
                "BILLING_SECRETS_ARN": self.data.secret.secret_arn,
                "BILLING_EMAIL_SENDER": self.stage.email_sender,
                "BILLING_PUBLIC_URL": self.stage.public_url,
                "STRIPE_PUBLISHABLE_KEY": self.stage.stripe_publishable_key,
                "BILLING_EVENT_BUS_NAME": self.data.event_bus.event_bus_name,
            },
            # Dependencies go to a layer cached by requirements.txt alone, so a code change
            # repackages only the app (chalice's function package hashes the code as well).
            "automatic_layer": True,
            "manage_iam_role": False,
            "iam_role_arn": UNASSIGNED_ROLE_ARN,
            "autogen_policy": False,
        }

    def _configure(self, function: LambdaFunction) -> None:
        cfn = self.chalice.get_resource(function.logical_id)
        if not isinstance(cfn, sam.CfnFunction):
            raise TypeError(f"{function.logical_id} is not a function in chalice's template")
        name = self.stage.function_name(function.name)
        access = FunctionRole(self, f"{function.logical_id}Access", function, self.stage, self.data)
        log_group = logs.CfnLogGroup(
            self,
            f"{function.logical_id}Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention_in_days=self.stage.log_retention_days,
        )
        log_group.apply_removal_policy(
            cdk.RemovalPolicy.RETAIN if self.stage.is_production else cdk.RemovalPolicy.DESTROY
        )
        cfn.function_name = name
        cfn.role = access.role.role_arn
        if function.kind is Kind.WORKER:
            cfn.timeout = queues.WORKER_TIMEOUT_SECONDS
            self._size_worker(cfn, function.name)
        if function.kind is Kind.SCHEDULE:
            self._run_each_tick_once(cfn, function)
        if function.kind is Kind.PUBLISHER:
            self._bind_stream(cfn, function.name)
            self.monitoring.stream_lag(f"{function.logical_id}IteratorAge", name)
        if function.kind is Kind.PUBLISHER or function.name == "event_deliveries":
            cfn.timeout = PUBLISHER_TIMEOUT_SECONDS  # deliveries take up to 10 s each
        if function.name == "webhook_reconciliation":
            cfn.timeout = reconciliation.TIMEOUT_SECONDS
        if function.name in SWEEP_GROUPS and function.period_seconds is not None:
            # Until just before the next tick: chalice's 30 s left ~10 s of sending a tick.
            cfn.timeout = schedules.sweep_timeout_seconds(function.period_seconds)
        # Created after its log group and its policy (the role it references already), so no
        # invocation runs without them.
        cfn.node.add_dependency(log_group, access.cfn_policy)
        self.monitoring.function_errors(f"{function.logical_id}Errors", name)

    def _size_worker(self, cfn: sam.CfnFunction, function_name: str) -> None:
        """The worker's concurrency comes from the Stripe budgets (chalicelib/jobs/schedules.py):
        at most WORKER_MAXIMUM_CONCURRENCY invocations from the queue (chalice sets the event
        source's ScalingConfig from app.py), reserved so nothing else starves it; and SQS's
        partial batch response, so a failed message never sends its batch back."""
        cfn.reserved_concurrent_executions = schedules.WORKER_RESERVED_CONCURRENCY
        event_name = to_cfn_resource_name(f"{function_name}-sqs-event-source")
        cfn.add_property_override(
            f"Events.{event_name}.Properties.FunctionResponseTypes", ["ReportBatchItemFailures"]
        )

    def _run_each_tick_once(self, cfn: sam.CfnFunction, function: LambdaFunction) -> None:
        """A scheduled run that failed is not run again, and one that could not start (Lambda
        throttled it) is dropped once the next tick is due: the next tick is the retry (sweeps
        go on from their cursors, the reconciliation from its per-account cursors). Lambda's
        default (two retries, an event kept 6 h) ran a failed or delayed tick again beside the
        ones after it: the same sweep twice at once, sending its due items twice."""
        config: dict[str, int] = {"MaximumRetryAttempts": 0}
        if function.period_seconds is not None:
            config["MaximumEventAgeInSeconds"] = min(
                max(function.period_seconds, MIN_EVENT_AGE_SECONDS), MAX_EVENT_AGE_SECONDS
            )
        cfn.add_property_override("EventInvokeConfig", config)

    def _bind_stream(self, cfn: sam.CfnFunction, function_name: str) -> None:
        """The publisher reads the table's stream (app.py names a placeholder): outbox-record
        INSERTs only, in order (one batch per shard at a time), retried with bisection, then
        sent to the publisher's dead-letter queue."""
        # chalice names the event source `<function>-dynamodb-event-source` (reading
        # cfn.events back through jsii fails on chalice's other structs).
        event_name = to_cfn_resource_name(f"{function_name}-dynamodb-event-source")
        prefix = f"Events.{event_name}.Properties"
        overrides: dict[str, Any] = {
            "Stream": self.data.table.table_stream_arn,
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": event_publisher.STREAM_BATCH_SIZE,
            "ParallelizationFactor": 1,
            "MaximumRetryAttempts": PUBLISHER_RETRIES,
            "BisectBatchOnFunctionError": True,
            "DestinationConfig": {
                "OnFailure": {
                    "Type": "SQS",
                    "Destination": self.data.publisher_dead_letter_queue.queue_arn,
                }
            },
            "FilterCriteria": {"Filters": [{"Pattern": json.dumps(event_publisher.STREAM_FILTER)}]},
        }
        for key, value in overrides.items():
            cfn.add_property_override(f"{prefix}.{key}", value)

    def _refuse_unconfigured(self) -> None:
        for child in self.chalice.sam_template.node.children:
            if isinstance(child, sam.CfnFunction) and child.role == UNASSIGNED_ROLE_ARN:
                raise ValueError(f"{child.node.id}: chalice packaged a function the stack missed")
            if isinstance(child, cdk.CfnResource) and child.cfn_resource_type in {
                "AWS::IAM::Role",
                "AWS::Logs::LogGroup",
            }:
                raise ValueError(
                    f"{child.node.id}: chalice created a {child.cfn_resource_type}; roles and log "
                    "groups belong to infra/cdk (drop iam/log settings from .chalice/config.json)"
                )

    def _output(self, name: str, value: str) -> None:
        cdk.CfnOutput(self, name, value=value)
