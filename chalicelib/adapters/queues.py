"""The SQS queue definitions (work queue + dead-letter queue), shared by CDK, local stack, tests."""

from __future__ import annotations

import json
from typing import Any

WORKER_TIMEOUT_SECONDS = 60
# AWS guidance: visibility timeout at least 6x the consuming function's timeout.
WORK_QUEUE_VISIBILITY_SECONDS = 6 * WORKER_TIMEOUT_SECONDS
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


def work_queue_name(stage: str) -> str:
    return f"membership-billing-{stage}-work"


def dead_letter_queue_name(stage: str) -> str:
    return f"membership-billing-{stage}-dlq"


def ensure_queues(sqs_client: Any, stage: str) -> dict[str, str]:
    """Create the DLQ and the work queue with a redrive policy; return their URLs."""
    dlq_url = sqs_client.create_queue(
        QueueName=dead_letter_queue_name(stage),
        Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
    )["QueueUrl"]
    dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    work_url = sqs_client.create_queue(
        QueueName=work_queue_name(stage),
        Attributes={
            "VisibilityTimeout": str(WORK_QUEUE_VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
        },
    )["QueueUrl"]
    return {"work_queue_url": work_url, "dead_letter_queue_url": dlq_url}
