"""The one way a route is declared.

`route(...)` registers a Chalice view on a blueprint *and* records the route's request and
response models for the OpenAPI document, so the contract and the code cannot drift apart.
The wrapper does everything routes have in common: auth kind check, body size limit, JSON and
pydantic validation, query parsing, Idempotency-Key on every authenticated POST
(chalicelib/api/idempotency.py), error mapping, correlation ids and metrics. Handlers receive
a RequestContext plus typed arguments and return a response model (or an ApiResponse).

    @route(bp, "/v1/plans", "POST", auth=Auth.COMMUNITY, body=CreatePlan, response=Plan,
           status=201, summary="Create a plan", tag="plans")
    def create_plan(ctx: RequestContext, body: CreatePlan) -> Plan: ...
"""

from __future__ import annotations

import enum
import functools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request
from pydantic import BaseModel, ConfigDict, ValidationError

from chalicelib.api.auth import (
    UNAVAILABLE,
    Principal,
    api_key_authorizer,
    principal_from_request,
)
from chalicelib.api.errors import (
    domain_error_response,
    error_response,
    validation_problems,
)
from chalicelib.api.idempotency import idempotency_key, request_fingerprint, run_idempotent
from chalicelib.api.models import without_shown_once
from chalicelib.bootstrap import Container, container
from chalicelib.domain.errors import (
    ChargeInProgress,
    ConcurrentChange,
    DomainError,
    FieldProblem,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from chalicelib.observability import correlation, count, flush_metrics, logger

MAX_BODY_BYTES = 64 * 1024
# Chalice answers 415 itself (in its own format) for a content type a route does not list;
# `*/*` lets every body reach our validation, which answers API.md's 400 for a body that is not
# sent as JSON (`_ensure_json_content_type`) or is not JSON.
ACCEPTED_CONTENT_TYPES = ["application/json", "*/*"]
_PATH_PARAM = re.compile(r"{([^}]+)}")


class _NoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _NoQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Auth(enum.Enum):
    NONE = "none"
    PLATFORM = "platform"
    COMMUNITY = "community"


@dataclass(frozen=True)
class ApiResponse:
    """A handler result with a chosen status, headers, or no body (204)."""

    body: BaseModel | dict[str, Any] | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestContext:
    principal: Principal
    request: Request
    container: Container
    request_id: str

    @property
    def community_id(self) -> str:
        """The caller's community (community-key routes only)."""
        assert self.principal.community_id is not None
        return self.principal.community_id


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str
    auth: Auth
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    summary: str
    tag: str
    error_statuses: tuple[int, ...]

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


ROUTES: list[RouteSpec] = []

Handler = Callable[..., Any]


def route(
    blueprint: Blueprint,
    path: str,
    method: str,
    *,
    auth: Auth,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    error_statuses: tuple[int, ...] = (),
) -> Callable[[Handler], Handler]:
    spec = RouteSpec(
        path=path,
        method=method.upper(),
        auth=auth,
        body=body,
        query=query,
        response=response,
        status=status,
        summary=summary,
        tag=tag,
        error_statuses=error_statuses,
    )

    def decorator(handler: Handler) -> Handler:
        ROUTES.append(spec)

        @functools.wraps(handler)
        def view(**path_params: str) -> Response:
            return _serve(spec, handler, blueprint.current_request, path_params)

        blueprint.route(
            path,
            methods=[spec.method],
            authorizer=None if auth is Auth.NONE else api_key_authorizer,
            content_types=ACCEPTED_CONTENT_TYPES,
        )(view)
        return handler

    return decorator


def _serve(
    spec: RouteSpec, handler: Handler, request: Request, path_params: dict[str, str]
) -> Response:
    request_id = request_id_of(request)
    principal = principal_from_request(request)
    with correlation(request_id=request_id, community_id=principal.community_id):
        try:
            _check_auth(spec, principal)
            _check_path_params(path_params)
            key = idempotency_key(request) if takes_idempotency_key(spec) else None
            kwargs: dict[str, Any] = dict(path_params)
            if spec.query is not None:
                kwargs["query"] = parse_query(request, spec.query)
            elif spec.auth is not Auth.NONE:
                parse_query(request, _NoQuery)  # a route without parameters takes none
            if spec.body is not None:
                kwargs["body"] = parse_body(request, spec.body)
            elif spec.auth is not Auth.NONE:
                parse_body(request, _NoBody)  # a route without a body takes none (or `{}`)
            ctx = RequestContext(principal, request, container(), request_id)

            def execute() -> Response:
                return _execute(spec, handler, ctx, kwargs)

            if key is None:
                return execute()
            fingerprint = request_fingerprint(
                spec.method,
                _concrete_path(spec.path, path_params),
                dict(request.query_params or {}),
                _raw_bytes(request),
            )
            return run_idempotent(
                ctx.container.idempotency,
                ctx.principal.community_id,
                int(ctx.container.clock.now().timestamp()),
                key,
                fingerprint,
                execute,
                redact=_redaction_for(spec),
            )
        except DomainError as error:
            return _domain_error(error)
        except Exception as error:
            return _unexpected_error(spec, error)
        finally:
            flush_metrics()


def _redaction_for(spec: RouteSpec) -> Callable[[Any], Any]:
    """What the idempotency store keeps of the route's answers: all but its credentials."""
    if spec.response is None:
        return _as_is
    return functools.partial(without_shown_once, spec.response)


def _as_is(body: Any) -> Any:
    return body


def _execute(
    spec: RouteSpec, handler: Handler, ctx: RequestContext, kwargs: dict[str, Any]
) -> Response:
    try:
        return _to_response(spec, handler(ctx, **kwargs))
    except DomainError as error:
        return _domain_error(error)
    except Exception as error:
        return _unexpected_error(spec, error)


def _unexpected_error(spec: RouteSpec, error: Exception) -> Response:
    """The handler's, or the idempotency store's around it (its claim is a write too)."""
    if transient_aws_error(error):
        return _domain_error(Unavailable("The database is busy; retry shortly."))
    return _internal_error(spec)


# Refusals that say "try again" rather than "no": lost races and busy dependencies. They carry
# Retry-After, and the idempotency store never keeps them as a key's answer.
RETRYABLE_ERRORS = (ConcurrentChange, ChargeInProgress, RateLimited, Unavailable)
RETRY_AFTER_SECONDS = "1"


def transient_aws_error(error: Exception) -> bool:
    """A ClientError that a retry can fix (throttling, DynamoDB's own failures) once botocore's
    own retries are spent: a 503, never a 500. Checked by name first, so importing the app
    loads no SDK; the codes are the adapters' one list (adapters/dynamodb/transactions.py)."""
    if type(error).__name__ != "ClientError":
        return False
    from chalicelib.adapters.dynamodb.transactions import is_transient

    return is_transient(error)


def _domain_error(error: DomainError) -> Response:
    if isinstance(error, Unavailable):
        logger.warning("dependency_unavailable", extra={"reason": error.message})
    response = domain_error_response(error)
    if isinstance(error, RETRYABLE_ERRORS):
        response.headers["Retry-After"] = retry_after(error)
    return response


def retry_after(error: DomainError) -> str:
    """The Retry-After of a retryable refusal: what a rate limit says, else a second."""
    if isinstance(error, RateLimited):
        return str(error.retry_after_seconds)
    return RETRY_AFTER_SECONDS


def _internal_error(spec: RouteSpec) -> Response:
    log_unhandled_error(f"{spec.method} {spec.path}")
    return error_response("internal", "Internal error; it has been logged.")


def log_unhandled_error(route: str) -> None:
    """A 500: the traceback, the route's template (never a token in its path) and the metric."""
    logger.exception("unhandled_error", extra={"route": route})
    count("UnhandledErrors")


MAX_PATH_PARAM_CHARS = 255


def _check_path_params(path_params: dict[str, str]) -> None:
    """No object has an id this long; DynamoDB would refuse it as a key (2048 bytes) with a 500."""
    for value in path_params.values():
        if len(value) > MAX_PATH_PARAM_CHARS:
            raise NotFound("Not found.")


def _raw_bytes(request: Request) -> bytes:
    raw = request.raw_body or b""
    return raw.encode() if isinstance(raw, str) else raw


def takes_idempotency_key(spec: RouteSpec) -> bool:
    """Every authenticated POST honours Idempotency-Key (see chalicelib/api/idempotency.py)."""
    return spec.method == "POST" and spec.auth is not Auth.NONE


def _concrete_path(template: str, path_params: dict[str, str]) -> str:
    return _PATH_PARAM.sub(lambda m: path_params.get(m.group(1), m.group(0)), template)


def request_id_of(request: Request) -> str:
    context = request.context or {}
    return str(context.get("requestId") or uuid.uuid4())


def _check_auth(spec: RouteSpec, principal: Principal) -> None:
    if spec.auth is Auth.NONE:
        return
    if principal.kind == UNAVAILABLE:
        raise Unavailable("The API key could not be checked; retry shortly.")
    if principal.kind == "anonymous":
        raise Unauthorized("Missing or unknown API key.")
    if spec.auth.value != principal.kind:
        raise Forbidden(f"This route needs a {spec.auth.value} key.")


def parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest.for_field("body", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    if not raw.strip():
        raw = b"{}"
    else:
        _ensure_json_content_type(request)
    try:
        decoded = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest.for_field("body", "The body is not valid JSON.") from None
    except RecursionError:
        raise InvalidRequest.for_field("body", "The body is nested too deeply.") from None
    if not isinstance(decoded, dict):
        raise InvalidRequest.for_field("body", "The body must be a JSON object.")
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise _invalid(error) from None


def _ensure_json_content_type(request: Request) -> None:
    """A body sent as something else than JSON is a 400 (API.md: wrong content type), even
    when it parses as JSON; no Content-Type at all is taken as JSON."""
    given = request.headers.get("content-type") if request.headers else None
    if given is None:
        return
    media = given.split(";", 1)[0].strip().lower()
    json_suffix = media.startswith("application/") and media.endswith("+json")
    if media == "application/json" or json_suffix:
        return
    raise InvalidRequest.for_field(
        "body", f"The body must be sent as application/json, not {media or 'nothing'}."
    )


def parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    params: dict[str, Any] = {}
    multi: Any = request.query_params or {}
    for name in multi:
        values = multi.getlist(name) if hasattr(multi, "getlist") else [multi[name]]
        if len(values) != 1:
            raise InvalidRequest.for_field(name, "Give this query parameter once.")
        params[name] = values[0]
    try:
        return model.model_validate(params)
    except ValidationError as error:
        raise _invalid(error) from None


def _invalid(error: ValidationError) -> DomainError:
    problems = validation_problems(error) or [FieldProblem("body", "Invalid request.")]
    return InvalidRequest("The request is not valid.", problems)


def _to_response(spec: RouteSpec, result: Any) -> Response:
    status = spec.status
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    body: Any = result
    if isinstance(result, ApiResponse):
        status = result.status or spec.status
        headers.update(result.headers)
        body = result.body
    if body is None:
        headers.pop("Content-Type")
        return Response(body="", status_code=204 if status == 200 else status, headers=headers)
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return Response(body=json.dumps(body), status_code=status, headers=headers)
