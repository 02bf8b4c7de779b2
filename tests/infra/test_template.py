"""The synthesized dev template has every resource the system needs, shaped by the code's own
definitions (schema.py, queues.py), and it passes cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match, Template
from chalice.utils import to_cfn_resource_name

from chalicelib.adapters import queues, webhook_sender
from chalicelib.adapters.dynamodb import schema
from chalicelib.adapters.stripe.client import worst_case_call_seconds
from chalicelib.api import idempotency
from chalicelib.config import Settings
from chalicelib.domain.rate_control import LIVE_LIMITS
from chalicelib.jobs import reconciliation, schedules, sweeps, worker
from chalicelib.jobs.registry import SWEEP_GROUPS
from chalicelib.services.event_delivery import DRAIN_BUDGET_SECONDS, LEASE_SECONDS
from infra.cdk.data import GENERATED_SECRET_KEY, SECRET_TEMPLATE
from infra.cdk.stack import WEBHOOK_PATH
from tests.infra.conftest import PUBLIC_URL, PUBLISHABLE_KEY, Synthesized

ENV_VARS = (
    "BILLING_STAGE",
    "BILLING_TABLE_NAME",
    "BILLING_WORK_QUEUE_URL",
    "BILLING_SECRETS_ARN",
    "BILLING_EMAIL_SENDER",
)


def _ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def _by_name(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def test_the_table_is_built_from_the_single_definition(synthesized: Synthesized) -> None:
    _, table = synthesized.only("AWS::DynamoDB::Table")
    props = table["Properties"]
    expected = schema.create_table_kwargs(f"membership-billing-{synthesized.stage}")
    assert props["TableName"] == expected["TableName"]
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(
        expected["AttributeDefinitions"], key=str
    )
    deployed = _by_name(props["GlobalSecondaryIndexes"], "IndexName")
    wanted = _by_name(expected["GlobalSecondaryIndexes"], "IndexName")
    assert set(deployed) == set(wanted) == set(schema.GSI_KEYS)
    for name, index in wanted.items():
        assert deployed[name]["KeySchema"] == index["KeySchema"]
        assert deployed[name]["Projection"] == index["Projection"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {
        "AttributeName": schema.TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # Not production: deletable, so a dev stack can be torn down.
    assert props["DeletionProtectionEnabled"] is False
    assert table["DeletionPolicy"] == "Delete"


def test_the_work_queue_has_a_dead_letter_queue_and_outlasts_the_worker(
    synthesized: Synthesized,
) -> None:
    by_name = {
        q["Properties"]["QueueName"]: (logical_id, q["Properties"])
        for logical_id, q in synthesized.of_type("AWS::SQS::Queue").items()
    }
    dlq_id, dlq = by_name[queues.dead_letter_queue_name(synthesized.stage)]
    _, work = by_name[queues.work_queue_name(synthesized.stage)]
    assert work["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": queues.MAX_RECEIVE_COUNT,
    }
    assert dlq["MessageRetentionPeriod"] == queues.DLQ_RETENTION_SECONDS
    assert work["VisibilityTimeout"] == queues.WORK_QUEUE_VISIBILITY_SECONDS
    consumers = [
        fn
        for fn in synthesized.functions.values()
        if any(e["Type"] == "SQS" for e in fn["Properties"].get("Events", {}).values())
    ]
    for fn in consumers:
        assert work["VisibilityTimeout"] >= 6 * fn["Properties"]["Timeout"]
        assert fn["Properties"]["Timeout"] == queues.WORKER_TIMEOUT_SECONDS


def test_the_worker_is_sized_from_the_stripe_budgets(synthesized: Synthesized) -> None:
    [(logical_id, worker)] = [
        (logical_id, fn)
        for logical_id, fn in synthesized.functions.items()
        if any(e["Type"] == "SQS" for e in fn["Properties"].get("Events", {}).values())
    ]
    [event] = worker["Properties"]["Events"].values()
    source = event["Properties"]
    assert source["BatchSize"] == schedules.WORKER_BATCH_SIZE
    assert source["ScalingConfig"]["MaximumConcurrency"] == schedules.WORKER_MAXIMUM_CONCURRENCY
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    reserved = worker["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == schedules.WORKER_RESERVED_CONCURRENCY >= schedules.WORKER_MAXIMUM_CONCURRENCY
    # From the budgets: enough threads for every account served at its full scheduled rate.
    threads = schedules.WORKER_MAXIMUM_CONCURRENCY * schedules.WORKER_THREADS
    in_flight = LIVE_LIMITS.scheduled_per_second * schedules.RENEWAL_SECONDS
    assert threads >= schedules.ACCOUNTS_AT_FULL_RATE * in_flight, logical_id
    assert schedules.WORKER_THREADS >= schedules.WORKER_BATCH_SIZE
    assert 2 <= schedules.WORKER_MAXIMUM_CONCURRENCY <= 1000  # what the event source allows


def test_every_sqs_handler_binds_to_the_stacks_work_queue(synthesized: Synthesized) -> None:
    work_queue = queues.work_queue_name(synthesized.stage)
    for logical_id, fn in synthesized.functions.items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            queue_arn = event["Properties"]["Queue"]["Fn::Sub"]
            assert queue_arn.endswith(f":{work_queue}"), (logical_id, queue_arn)


def test_every_function_gets_the_settings_it_reads(synthesized: Synthesized) -> None:
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    secret_id, _ = synthesized.only("AWS::SecretsManager::Secret")
    work_id = next(
        logical_id
        for logical_id, q in synthesized.of_type("AWS::SQS::Queue").items()
        if q["Properties"]["QueueName"] == queues.work_queue_name(synthesized.stage)
    )
    assert synthesized.functions
    for logical_id, fn in synthesized.functions.items():
        variables = fn["Properties"]["Environment"]["Variables"]
        assert set(ENV_VARS) <= set(variables), logical_id
        assert variables["BILLING_STAGE"] == synthesized.stage
        assert variables["BILLING_TABLE_NAME"] == _ref(table_id)
        assert variables["BILLING_WORK_QUEUE_URL"] == _ref(work_id)
        assert variables["BILLING_SECRETS_ARN"] == _ref(secret_id)
        assert "@" in variables["BILLING_EMAIL_SENDER"]
        assert variables["BILLING_PUBLIC_URL"] == PUBLIC_URL, logical_id


def test_the_functions_that_issue_pay_now_links_know_the_public_url(
    synthesized: Synthesized,
) -> None:
    """The API (`POST .../payment-link`, "email me a new link"), the stream publisher (the
    dunning mailer's "payment failed" email) and the worker (the last reminder) issue links."""
    issuing = {"Api": 0, "DynamoDB": 0, "SQS": 0}
    for logical_id, fn in synthesized.functions.items():
        kinds = {e["Type"] for e in fn["Properties"].get("Events", {}).values()}
        if logical_id == "APIHandler":
            kinds.add("Api")
        for kind in kinds & set(issuing):
            assert fn["Properties"]["Environment"]["Variables"]["BILLING_PUBLIC_URL"] == PUBLIC_URL
            issuing[kind] += 1
    assert issuing == {"Api": 1, "DynamoDB": 1, "SQS": 1}


def test_the_pay_page_and_the_console_get_the_stages_publishable_key(
    synthesized: Synthesized,
) -> None:
    """The pay page (`GET /pay/{token}`) and the console's card entry start Stripe.js with
    STRIPE_PUBLISHABLE_KEY (chalicelib/api/pay_page.py, console.py); without it `Stripe("")`
    throws and no emailed pay-now link can be paid."""
    api = synthesized.resources["APIHandler"]
    assert api["Properties"]["Environment"]["Variables"]["STRIPE_PUBLISHABLE_KEY"] == (
        PUBLISHABLE_KEY
    )


def test_the_functions_that_drain_deliveries_outlast_a_drain_pass(
    synthesized: Synthesized,
) -> None:
    """A drain pass starts no delivery after DRAIN_BUDGET_SECONDS and a delivery gets 10 s in
    all: the stream publisher (which publishes its batch first) and `event_deliveries` must
    outlast that, and so must each endpoint's lease (else a second drainer sends its queue)."""
    longest_pass = DRAIN_BUDGET_SECONDS + webhook_sender.TIMEOUT_SECONDS
    assert longest_pass < LEASE_SECONDS
    for logical_id in ("EventPublisher", "EventDeliveries"):
        timeout = synthesized.resources[logical_id]["Properties"]["Timeout"]
        assert timeout >= longest_pass + 60, (logical_id, timeout)


def test_webhook_reconciliation_has_the_time_to_reach_every_account(
    synthesized: Synthesized,
) -> None:
    """Each run stops LAMBDA_SAFETY_SECONDS before its timeout and the next goes on from where
    it stopped; with chalice's 30 s it had 10 s, about 20 accounts a run (and, before runs
    resumed, the communities after them were never reconciled). It ends before the next run
    (every 15 minutes) starts."""
    timeout = synthesized.resources["WebhookReconciliation"]["Properties"]["Timeout"]
    assert timeout == reconciliation.TIMEOUT_SECONDS
    budget = timeout - reconciliation.LAMBDA_SAFETY_SECONDS
    assert budget >= reconciliation.ACCOUNTS_PER_RUN * reconciliation.ACCOUNT_SECONDS
    assert timeout < reconciliation.EVERY_MINUTES * 60


def test_each_sweep_runs_until_just_before_its_next_tick(synthesized: Synthesized) -> None:
    """A sweep stops LAMBDA_SAFETY_SECONDS before its timeout and the next tick goes on from
    its cursors. With chalice's 30 s a renewal tick had ~10 s of sending (~3,000 messages,
    bench/README.md): a million renewals due at once took more than a day to be queued. Each
    sweep now runs until shortly before its schedule's next tick (never into it: two ticks at
    once send the same due items twice), within Lambda's 900 s."""
    periods = {
        "Renewals": schedules.RENEWALS_EVERY_MINUTES,
        "FailedPayments": schedules.FAILED_PAYMENTS_EVERY_MINUTES,
        "Expirations": schedules.EXPIRATIONS_EVERY_MINUTES,
        "PendingPayments": schedules.RECOVERY_EVERY_MINUTES,
    }
    assert set(periods) == {to_cfn_resource_name(name) for name in SWEEP_GROUPS}
    for logical_id, minutes in periods.items():
        timeout = synthesized.resources[logical_id]["Properties"]["Timeout"]
        assert min(minutes * 60 - 60, 840) <= timeout < min(minutes * 60, 901), (
            logical_id,
            timeout,
        )
        assert timeout - sweeps.LAMBDA_SAFETY_SECONDS >= 0.8 * min(minutes * 60, 900)


def test_each_function_outlasts_its_stripe_calls_and_the_api_its_idempotency_claim(
    synthesized: Synthesized,
) -> None:
    """The API (API Gateway gives up at 29 s) may make a charge and a cancel against a Stripe
    that hangs; an `Idempotency-Key` claim outlives the API function, so a live request's key is
    never taken over; a worker message's worst case fits its Lambda many times over."""
    stripe_timeout = Settings.from_env({}).stripe_timeout_seconds
    api_timeout = synthesized.resources["APIHandler"]["Properties"]["Timeout"]
    assert 2 * worst_case_call_seconds(stripe_timeout) < 29 <= api_timeout
    assert api_timeout < idempotency.LOCK_SECONDS
    worker_timeout = synthesized.resources["Worker"]["Properties"]["Timeout"]
    assert worker.message_time_budget(stripe_timeout) < worker_timeout
    for logical_id, fn in synthesized.functions.items():
        variables = fn["Properties"]["Environment"]["Variables"]
        assert "STRIPE_TIMEOUT_SECONDS" not in variables, logical_id  # the default, 5 s


def test_a_scheduled_tick_runs_once_and_never_beside_the_next(synthesized: Synthesized) -> None:
    """No retry of a failed run and no delayed run past the next tick's time: the next tick
    is the retry, and two runs of one sweep at once send its due items twice."""
    seconds = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400}
    scheduled = 0
    for logical_id, fn in synthesized.functions.items():
        [*schedules_of] = (
            e["Properties"]["Schedule"]
            for e in fn["Properties"].get("Events", {}).values()
            if e["Type"] == "Schedule"
        )
        if not schedules_of:
            continue
        [expression] = schedules_of
        value, unit = expression.removeprefix("rate(").removesuffix(")").split()
        config = fn["Properties"]["EventInvokeConfig"]
        assert config == {
            "MaximumRetryAttempts": 0,
            "MaximumEventAgeInSeconds": int(value) * seconds[unit],
        }, logical_id
        scheduled += 1
    assert scheduled == 6  # README, "Scheduled jobs"


def test_the_secret_holds_the_json_the_app_reads(synthesized: Synthesized) -> None:
    _, secret = synthesized.only("AWS::SecretsManager::Secret")
    generate = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generate["SecretStringTemplate"]) == SECRET_TEMPLATE
    assert generate["GenerateStringKey"] == GENERATED_SECRET_KEY
    assert set(SECRET_TEMPLATE) | {GENERATED_SECRET_KEY} == {
        "stripe_secret_key",
        "webhook_secrets",
        "platform_api_key",
    }
    assert secret["Properties"]["Name"] == f"membership-billing/{synthesized.stage}"


def test_the_api_and_the_jobs_chalice_derives_are_all_there(synthesized: Synthesized) -> None:
    template = Template.from_json(synthesized.template)
    template.has_resource_properties(
        "AWS::Serverless::Function", {"Handler": "app.app", "Runtime": "python3.11"}
    )
    api_id, api = synthesized.only("AWS::Serverless::Api")
    assert api_id == "RestAPI"
    assert api["Properties"]["StageName"] == "api"  # api_gateway_stage of .chalice/config.json
    schedules = [
        event["Properties"]["Schedule"]
        for fn in synthesized.functions.values()
        for event in fn["Properties"].get("Events", {}).values()
        if event["Type"] == "Schedule"
    ]
    for expression in schedules:
        assert expression.startswith(("rate(", "cron(")), expression
    # Dependencies live in one layer, so the functions' own package is just the code.
    _, layer = synthesized.only("AWS::Serverless::LayerVersion")
    for fn in synthesized.functions.values():
        assert fn["Properties"]["Layers"] == [{"Ref": "ManagedLayer"}]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]


def test_each_function_has_its_name_and_a_log_group_with_retention(
    synthesized: Synthesized,
) -> None:
    log_groups = {
        lg["Properties"]["LogGroupName"]: (logical_id, lg["Properties"])
        for logical_id, lg in synthesized.of_type("AWS::Logs::LogGroup").items()
    }
    names = set()
    for logical_id, fn in synthesized.functions.items():
        name = fn["Properties"]["FunctionName"]
        assert name.startswith(f"membership-billing-{synthesized.stage}-")
        assert len(name) <= 64
        names.add(name)
        group_id, group = log_groups[f"/aws/lambda/{name}"]
        assert group["RetentionInDays"] == 14
        assert group_id in fn["DependsOn"], logical_id
    assert len(names) == len(synthesized.functions) == len(log_groups)


def test_alarms_cover_dead_letters_function_errors_and_5xx(synthesized: Synthesized) -> None:
    topic_id, _ = synthesized.only("AWS::SNS::Topic")
    alarms = [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]
    for alarm in alarms:
        assert alarm["AlarmActions"] == [_ref(topic_id)]
        assert alarm["TreatMissingData"] == "notBreaching"

    def dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
        return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}

    dlq_id = next(
        logical_id
        for logical_id, q in synthesized.of_type("AWS::SQS::Queue").items()
        if q["Properties"]["QueueName"] == queues.dead_letter_queue_name(synthesized.stage)
    )
    dlq_alarms = [
        a
        for a in alarms
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and dimensions(a) == {"QueueName": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
    ]
    assert len(dlq_alarms) == 1
    assert dlq_alarms[0]["Threshold"] == 1
    assert dlq_alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    errors = {
        dimensions(a)["FunctionName"]
        for a in alarms
        if a["Namespace"] == "AWS/Lambda" and a["MetricName"] == "Errors"
    }
    assert errors == {fn["Properties"]["FunctionName"] for fn in synthesized.functions.values()}

    _, api = synthesized.only("AWS::Serverless::Api")
    api_name = api["Properties"]["Name"]
    assert api_name == f"membership-billing-{synthesized.stage}"
    api_5xx = [
        dimensions(a)
        for a in alarms
        if a["Namespace"] == "AWS/ApiGateway" and a["MetricName"] == "5XXError"
    ]
    assert {"ApiName": api_name, "Stage": "api"} in api_5xx
    if WEBHOOK_PATH in api["Properties"]["DefinitionBody"]["paths"]:
        assert {
            "ApiName": api_name,
            "Stage": "api",
            "Resource": WEBHOOK_PATH,
            "Method": "POST",
        } in api_5xx
        # Per-method metrics exist only where they are switched on.
        metrics = [s for s in api["Properties"]["MethodSettings"] if s.get("MetricsEnabled")]
        assert [(s["ResourcePath"], s["HttpMethod"]) for s in metrics] == [
            ("/~1webhooks~1stripe", "POST")
        ]


def test_every_route_is_throttled_above_the_webhooks_of_a_full_fleet(
    synthesized: Synthesized,
) -> None:
    """Without a stage limit a flood of the unauthenticated routes (webhooks, pay pages) took
    the shared Lambda concurrency the sweeps, the authorizer and the publisher need; the
    limit stays above what Stripe sends while the worker fleet charges at its full rate."""
    _, api = synthesized.only("AWS::Serverless::Api")
    settings = api["Properties"]["MethodSettings"]
    assert {"ResourcePath": "/*", "HttpMethod": "*"}.items() <= settings[0].items()
    peak_charges = (
        schedules.WORKER_MAXIMUM_CONCURRENCY * schedules.WORKER_THREADS / schedules.RENEWAL_SECONDS
    )
    for setting in settings:  # a method's own settings would leave it unthrottled
        assert setting["ThrottlingRateLimit"] >= 2 * peak_charges, setting
        assert setting["ThrottlingBurstLimit"] >= setting["ThrottlingRateLimit"], setting
    throttled = api["Properties"]["GatewayResponses"]["THROTTLED"]
    assert throttled["StatusCode"] == "429"
    assert throttled["ResponseParameters"] == {"Headers": {"Retry-After": "'1'"}}


def test_gateway_responses_use_the_error_envelope(synthesized: Synthesized) -> None:
    _, api = synthesized.only("AWS::Serverless::Api")
    responses = api["Properties"]["GatewayResponses"]
    expected = {
        "UNAUTHORIZED": ("401", "unauthorized"),
        "ACCESS_DENIED": ("403", "forbidden"),
        "DEFAULT_4XX": (None, "invalid_request"),
        "DEFAULT_5XX": (None, "internal"),
    }
    for response_type, (status, error_type) in expected.items():
        response = responses[response_type]
        assert response.get("StatusCode") == status
        # API Gateway puts a JSON string where the template says $context.error.messageString.
        body = response["ResponseTemplates"]["application/json"].replace(
            "$context.error.messageString", json.dumps("Unauthorized")
        )
        error = json.loads(body)["error"]
        assert error["type"] == error_type
        assert isinstance(error["message"], str) and error["message"]
        assert error["details"] == []


def test_outputs_name_what_an_operator_needs(synthesized: Synthesized) -> None:
    template = Template.from_json(synthesized.template)
    for name in ("EndpointURL", "TableName", "WorkQueueUrl", "SecretArn", "AlarmTopicArn"):
        template.has_output(name, Match.any_value())


def test_cfn_lint_is_clean(synthesized: Synthesized) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(synthesized.template_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_outbox_stream_feeds_the_publisher_with_retries_a_dlq_and_alarms(
    synthesized: Synthesized,
) -> None:
    """Issue 13: the table's stream -> the publisher (outbox inserts only, in order, bisected
    retries, then its own DLQ); the stage's bus; alarms on that DLQ and on stream lag."""
    _, table = synthesized.only("AWS::DynamoDB::Table")
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    bus_id, bus = synthesized.only("AWS::Events::EventBus")
    assert bus["Properties"]["Name"] == f"membership-billing-{synthesized.stage}"
    publishers = [
        (logical_id, fn)
        for logical_id, fn in synthesized.functions.items()
        if any(e["Type"] == "DynamoDB" for e in fn["Properties"].get("Events", {}).values())
    ]
    assert len(publishers) == 1
    publisher_id, publisher = publishers[0]
    [source] = publisher["Properties"]["Events"].values()
    props = source["Properties"]
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    assert props["Stream"] == {"Fn::GetAtt": [table_id, "StreamArn"]}
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["ParallelizationFactor"] == 1 and props["BisectBatchOnFunctionError"] is True
    assert 0 < props["MaximumRetryAttempts"] <= 10
    pattern = json.loads(props["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern["eventName"] == ["INSERT"]
    assert pattern["dynamodb"]["NewImage"]["type"] == {"S": ["outbox_record"]}
    dlq_id = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert synthesized.resources[dlq_id]["Type"] == "AWS::SQS::Queue"
    for fn in synthesized.functions.values():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["BILLING_EVENT_BUS_NAME"] == {"Ref": bus_id}
    alarms = [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]
    dlq_alarm = [
        a
        for a in alarms
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dlq_id, "QueueName"]}
    ]
    assert len(dlq_alarm) == 1
    lag = [a for a in alarms if a["MetricName"] == "IteratorAge"]
    assert len(lag) == 1
    assert lag[0]["Dimensions"][0]["Value"] == publisher["Properties"]["FunctionName"]
    assert publisher_id


def test_late_scheduled_work_raises_an_alarm_before_anything_dead_letters(
    synthesized: Synthesized,
) -> None:
    """A worker failing slowly or outpaced leaves renewals late long before a message
    dead-letters: the work queue's oldest message past half an hour (twice SQS's longest delay,
    which rate control uses) alarms."""
    work_queue_id = next(
        logical_id
        for logical_id, q in synthesized.of_type("AWS::SQS::Queue").items()
        if q["Properties"]["QueueName"] == queues.work_queue_name(synthesized.stage)
    )
    [alarm] = [
        a["Properties"]
        for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "ApproximateAgeOfOldestMessage"
    ]
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [work_queue_id, "QueueName"]}}
    ]
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Maximum", 1800)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] >= 2 * 900  # never for a message merely waiting out its delay
