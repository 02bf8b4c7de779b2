"""The Lambda functions chalice packages from app.py, and what kind of work each one does.

The stack gives every function its own role, log group and alarm, with permissions chosen by
its kind, so it needs the list before it touches chalice's template. A function of a kind the
stack does not know (a pure Lambda, an S3 or SNS handler, a websocket) stops the synth: it must
get a deliberate permission set in `permissions.py`, never a default one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from chalice import Chalice, Rate
from chalice.app import (
    BuiltinAuthConfig,
    DynamoDBEventConfig,
    ScheduledEventConfig,
    SQSEventConfig,
)
from chalice.cli.factory import CLIFactory
from chalice.utils import to_cfn_resource_name

API_HANDLER = "api_handler"
API_HANDLER_LOGICAL_ID = "APIHandler"
REST_API_LOGICAL_ID = "RestAPI"


class Kind(StrEnum):
    API = "api"
    AUTHORIZER = "authorizer"
    SCHEDULE = "schedule"
    WORKER = "worker"
    PUBLISHER = "publisher"  # the table's stream -> events to the platform


@dataclass(frozen=True)
class LambdaFunction:
    name: str  # chalice's name for it (the key of `lambda_functions` in .chalice/config.json)
    kind: Kind
    logical_id: str  # its resource in chalice's SAM template
    # A schedule's period, when it is a `Rate` (None: a cron expression, or not a schedule).
    period_seconds: int | None = None


_RATE_UNIT_SECONDS = {Rate.MINUTES: 60, Rate.HOURS: 3600, Rate.DAYS: 86400}


class UnsupportedFunction(ValueError):
    """app.py declares a function the stack has no permission set for."""


def load_chalice_app(source_dir: Path, stage: str) -> Chalice:
    """Import app.py the way chalice's packager does, with the stage's environment variables."""
    os.environ["BILLING_STAGE"] = stage
    config = CLIFactory(str(source_dir)).create_config_obj(stage)
    app: Chalice = config.chalice_app
    return app


def lambda_functions(app: Chalice, work_queue_name: str) -> list[LambdaFunction]:
    """Every function chalice will package, with its kind; refuses the ones we cannot secure."""
    found: list[LambdaFunction] = []
    if app.routes:
        found.append(LambdaFunction(API_HANDLER, Kind.API, API_HANDLER_LOGICAL_ID))
    for auth in app.builtin_auth_handlers:
        found.append(_function(auth, Kind.AUTHORIZER))
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            schedule = _function(source, Kind.SCHEDULE)
            found.append(replace(schedule, period_seconds=_period_seconds(source)))
        elif isinstance(source, SQSEventConfig):
            _check_work_queue(source, work_queue_name)
            found.append(_function(source, Kind.WORKER))
        elif isinstance(source, DynamoDBEventConfig):
            found.append(_function(source, Kind.PUBLISHER))
        else:
            raise UnsupportedFunction(
                f"{source.name}: {type(source).__name__} has no permission set in infra/cdk"
            )
    for pure in app.pure_lambda_functions:
        raise UnsupportedFunction(f"{pure.name}: pure Lambda functions have no permission set")
    if app.websocket_handlers:
        raise UnsupportedFunction("websocket handlers have no permission set in infra/cdk")
    return found


def has_route(app: Chalice, path: str, method: str) -> bool:
    return method in app.routes.get(path, {})


def _function(
    config: BuiltinAuthConfig | ScheduledEventConfig | SQSEventConfig | DynamoDBEventConfig,
    kind: Kind,
) -> LambdaFunction:
    return LambdaFunction(config.name, kind, to_cfn_resource_name(config.name))


def _period_seconds(source: ScheduledEventConfig) -> int | None:
    expression = source.schedule_expression
    if isinstance(expression, Rate):
        return int(expression.value) * _RATE_UNIT_SECONDS[expression.unit]
    return None


def _check_work_queue(source: SQSEventConfig, work_queue_name: str) -> None:
    # Chalice binds a handler to a queue by name in this account and region; the stack creates
    # the work queue under exactly this name, so any other name would bind to nothing.
    if source.queue_arn is not None or source.queue != work_queue_name:
        bound = source.queue_arn or source.queue
        raise UnsupportedFunction(
            f"{source.name}: listens to {bound!r}, but the stack's work queue is "
            f"{work_queue_name!r} (declare queue=work_queue_name(BILLING_STAGE) in app.py)"
        )
