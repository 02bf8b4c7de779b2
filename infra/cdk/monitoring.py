"""Alarms, all sent to one SNS topic: a dead-lettered message, late scheduled work, a failing
function, 5xx answers."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.stage import StageSettings

PERIOD = cdk.Duration.minutes(5)
# Share of requests answered 5xx within PERIOD (API Gateway's 5XXError averages to a rate).
API_5XX_RATE = 0.05
WEBHOOK_5XX_RATE = 0.05
STREAM_LAG_MS = 60_000
# The work queue's oldest message: a message waits at most SQS's longest delay (900 s, what rate
# control and the sweeps' `not_before` use) before a worker may take it, so half an hour means
# the workers are not keeping up (throttled, failing slowly, a backlog beyond the fleet).
WORK_BACKLOG_AGE_SECONDS = 1800


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, stage: StageSettings) -> None:
        super().__init__(scope, construct_id)
        self._stage = stage
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{stage.stack_name}-alarms",
            display_name=f"{stage.stack_name} alarms",
            enforce_ssl=True,
        )
        if stage.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(stage.alarm_email))

    def dead_letters(
        self,
        queue: sqs.Queue,
        construct_id: str = "DeadLetterQueueNotEmpty",
        suffix: str = "dlq-not-empty",
        description: str = "A work message failed every retry and sits in the dead-letter queue.",
    ) -> cloudwatch.Alarm:
        metric = queue.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )
        return self._alarm(construct_id, suffix, metric, threshold=1, description=description)

    def work_backlog(self, queue: sqs.Queue) -> cloudwatch.Alarm:
        """Renewals, retries and cancellations fall behind: the work queue's oldest message.
        A dead-letter alarm fires only once a message has failed every retry; this one fires
        while the work is still late (a worker failing slowly, throttled, or outpaced)."""
        metric = queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum")
        return self._alarm(
            "WorkQueueBacklogAge",
            "work-queue-backlog-age",
            metric,
            threshold=WORK_BACKLOG_AGE_SECONDS,
            description=(
                f"The work queue's oldest message is over {WORK_BACKLOG_AGE_SECONDS // 60} minutes"
                " old: scheduled work is late."
            ),
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    def stream_lag(self, construct_id: str, function_name: str) -> cloudwatch.Alarm:
        """Events to the platform fall behind: the publisher's oldest unread stream record."""
        metric = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="IteratorAge",
            dimensions_map={"FunctionName": function_name},
            statistic="Maximum",
            period=PERIOD,
        )
        return self._alarm(
            construct_id,
            "publisher-iterator-age",
            metric,
            threshold=STREAM_LAG_MS,
            description=f"{function_name} is over {STREAM_LAG_MS // 1000} s behind the stream.",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    def function_errors(self, construct_id: str, function_name: str) -> cloudwatch.Alarm:
        metric = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions_map={"FunctionName": function_name},
            statistic="Sum",
            period=PERIOD,
        )
        return self._alarm(
            construct_id,
            f"{function_name.removeprefix(self._stage.stack_name + '-')}-errors",
            metric,
            threshold=1,
            description=f"{function_name} raised errors.",
        )

    def api_5xx(self, api_name: str, resource: str | None = None) -> cloudwatch.Alarm:
        dimensions = {"ApiName": api_name, "Stage": self._stage.api_gateway_stage}
        if resource is None:
            construct_id, suffix, threshold = "Api5xxRate", "api-5xx-rate", API_5XX_RATE
            what = "The API"
        else:
            dimensions.update({"Resource": resource, "Method": "POST"})
            construct_id, suffix, threshold = "Webhook5xxRate", "webhook-5xx-rate", WEBHOOK_5XX_RATE
            what = f"POST {resource}"
        metric = cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name="5XXError",
            dimensions_map=dimensions,
            statistic="Average",
            period=PERIOD,
        )
        return self._alarm(
            construct_id,
            suffix,
            metric,
            threshold=threshold,
            description=f"{what} answered more than {threshold:.0%} of requests with 5xx.",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    def _alarm(
        self,
        construct_id: str,
        suffix: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{self._stage.stack_name}-{suffix}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        return alarm
