"""The Chalice app: registers blueprints, schedules and the SQS worker. Nothing else lives here."""

import os

# No pydantic plugins are used; skipping their entry-point scan saves ~27 ms of the API's cold
# start (pydantic reads this when first imported).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from chalice import Rate
from chalice.app import CloudWatchEvent, DynamoDBEvent, SQSEvent

from chalicelib.adapters.queues import work_queue_name
from chalicelib.api import auth
from chalicelib.api.blueprints import LazyRoutesChalice, http_blueprints
from chalicelib.jobs import event_publisher, reconciliation, schedules, sweeps, worker

# The HTTP routes are registered when the route table is first read (chalicelib/api/blueprints.py),
# so the scheduled and worker functions never build the API's models.
app = LazyRoutesChalice(app_name="membership-billing", route_blueprints=http_blueprints)
app.register_blueprint(auth.blueprint)


# Scheduled jobs (DESIGN.md section 8): each sweep fans due items out to the work queue.
@app.schedule(Rate(schedules.RENEWALS_EVERY_MINUTES, unit=Rate.MINUTES), name="renewals")
def renewals(event: CloudWatchEvent) -> None:
    sweeps.scheduled_sweep("renewals", event.context)


@app.schedule(
    Rate(schedules.FAILED_PAYMENTS_EVERY_MINUTES, unit=Rate.MINUTES), name="failed_payments"
)
def failed_payments(event: CloudWatchEvent) -> None:
    sweeps.scheduled_sweep("failed_payments", event.context)


@app.schedule(Rate(schedules.EXPIRATIONS_EVERY_MINUTES, unit=Rate.MINUTES), name="expirations")
def expirations(event: CloudWatchEvent) -> None:
    sweeps.scheduled_sweep("expirations", event.context)


@app.schedule(Rate(schedules.RECOVERY_EVERY_MINUTES, unit=Rate.MINUTES), name="pending_payments")
def pending_payments(event: CloudWatchEvent) -> None:
    sweeps.scheduled_sweep("pending_payments", event.context)


@app.schedule(Rate(reconciliation.EVERY_MINUTES, unit=Rate.MINUTES), name="webhook_reconciliation")
def webhook_reconciliation(event: CloudWatchEvent) -> None:
    reconciliation.scheduled_reconciliation(event.context)


@app.on_sqs_message(
    queue=work_queue_name(os.environ.get("BILLING_STAGE", "local")),
    batch_size=schedules.WORKER_BATCH_SIZE,
    maximum_concurrency=schedules.WORKER_MAXIMUM_CONCURRENCY,
    name="worker",
)
def worker_handler(event: SQSEvent) -> dict[str, list[dict[str, str]]]:
    return worker.handle_sqs_event(event)


# Events to the platform: endpoints whose delivery backoff is over (the Streams publisher
# handles new events as they are written).
@app.schedule(Rate(1, unit=Rate.MINUTES), name="event_deliveries")
def event_deliveries(event: CloudWatchEvent) -> None:
    event_publisher.drain_due_deliveries()


# The publisher of events to the platform: the table's stream, outbox records only (infra/cdk
# binds it to the real stream ARN, its filter, retries and dead-letter queue).
@app.on_dynamodb_record(
    stream_arn=os.environ.get("BILLING_EVENTS_STREAM_ARN", event_publisher.STREAM_PLACEHOLDER),
    batch_size=event_publisher.STREAM_BATCH_SIZE,
    starting_position="TRIM_HORIZON",
    name="event_publisher",
)
def event_publisher_handler(event: DynamoDBEvent) -> None:
    event_publisher.handle_stream(event.to_dict()["Records"])
