"""The API for the local stack: chalice's local server, answering like the deployed gateway.

`chalice local` simulates API Gateway's own answers in its own shapes (a request without an
Authorization header gets `{"message": "Unauthorized"}`, an unknown route `{"message":
"Missing Authentication Token"}`). Deployed, API Gateway's gateway responses turn those into
API.md's error envelope (infra/cdk/api_gateway.py); this server does the same locally, so a
client meets one error format everywhere. Everything else is chalice's local server unchanged.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from chalice import local

from chalicelib.api.errors import error_body

# What the deployed gateway answers (infra/cdk/api_gateway.py, GATEWAY_RESPONSES), by the
# local gateway's error: (status, API.md error type, message).
UNAUTHORIZED = (401, "unauthorized", "Missing or invalid API key.")
NO_SUCH_ROUTE = (404, "not_found", "No such route.")
FORBIDDEN = (403, "forbidden", "This API key may not call this route.")
AUTHORIZER_FAILED = (500, "internal", "The authorizer failed.")


def gateway_answer(error: local.LocalGatewayException) -> tuple[int, str, str]:
    if isinstance(error, local.NotAuthorizedError):
        return UNAUTHORIZED
    if isinstance(error, local.ForbiddenError):
        # chalice local says 403 "Missing Authentication Token" for a route it does not have,
        # as API Gateway does (with an Authorization header, "Authorization header requires
        # 'Credential' parameter..."); the deployed gateway response makes that a 404.
        body = error.body or b""
        if b"Missing Authentication Token" in body or b"Authorization header requires" in body:
            return NO_SUCH_ROUTE
        return FORBIDDEN
    return AUTHORIZER_FAILED


class EnvelopeRequestHandler(local.ChaliceRequestHandler):
    def _send_http_response(
        self, code: int, headers: dict[str, Any], body: bytes | str | None
    ) -> None:
        # A method the route does not have: Chalice answers 405 in its own format; API Gateway,
        # which has only the methods the app defines, answers "Missing Authentication Token",
        # which the deployed gateway response makes a 404 (infra/cdk/api_gateway.py).
        if code == 405 and b"MethodNotAllowedError" in _as_bytes(body):
            status, error_type, message = NO_SUCH_ROUTE
            headers = {"Content-Type": "application/json"}
            body = json.dumps(error_body(error_type, message)).encode()
            code = status
        super()._send_http_response(code, headers, body)

    def _send_error_response(self, error: local.LocalGatewayException) -> None:
        status, error_type, message = gateway_answer(error)
        headers = {
            key: value for key, value in error.headers.items() if key.lower() != "content-type"
        }
        headers["Content-Type"] = "application/json"
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        body = json.dumps(error_body(error_type, message)).encode()
        self._send_http_response(status, headers, body)


def _as_bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body if isinstance(body, bytes) else body.encode()


def create_server(project_dir: str, host: str, port: int, stage: str) -> local.LocalDevServer:
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes

    factory = CLIFactory(project_dir=project_dir)
    config = factory.create_config_obj(chalice_stage_name=stage)
    app_obj = config.chalice_app
    validate_routes(app_obj.routes)
    # As chalice.local.create_local_server: the app keeps its current request per thread.
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_obj.__class__)
    app_obj.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(app_obj, config, host, port, handler_cls=EnvelopeRequestHandler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project-dir", default=".")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    # As `chalice local`: the app's log lines go to stdout.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    create_server(args.project_dir, args.host, args.port, args.stage).serve_forever()


if __name__ == "__main__":
    main()
