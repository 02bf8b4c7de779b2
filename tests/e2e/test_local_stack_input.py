"""The local stack answers like the deployed one, and moto server keeps DynamoDB's atomicity
under concurrent requests (issue 11 items 16 and 20)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e


def _request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def _assert_envelope(body: Any, error_type: str) -> None:
    assert set(body) == {"error"}, body
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["details"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/plans"), ("POST", "/v1/communities"), ("GET", "/v1/test-clock")],
)
def test_a_missing_authorization_header_is_a_401_envelope(
    stack: LocalStack, method: str, path: str
) -> None:
    status, headers, body = _request(
        f"{stack.config.api_url}{path}",
        method,
        {"Content-Type": "application/json"},
        b"{}" if method == "POST" else None,
    )
    assert status == 401
    _assert_envelope(body, "unauthorized")
    assert headers.get("WWW-Authenticate") == "Bearer"
    _, _, document = _request(f"{stack.config.api_url}/v1/openapi.json")
    declared = document["paths"][path][method.lower()]["responses"]["401"]["headers"]
    assert declared["WWW-Authenticate"]["schema"]["enum"] == ["Bearer"]


def test_an_unknown_route_is_a_404_envelope(stack: LocalStack) -> None:
    status, _, body = _request(f"{stack.config.api_url}/v1/no-such-thing")
    assert status == 404
    _assert_envelope(body, "not_found")
    # As a client sends it, with its key (chalice local said 403 "may not call this route"),
    # and a method the route does not have (chalice's own 405 format): API Gateway's 404.
    auth = {"Authorization": f"Bearer {stack.config.platform_api_key}"}
    for method, path in (("GET", "/v1/no-such-thing"), ("PUT", "/v1/communities")):
        status, _, body = _request(f"{stack.config.api_url}{path}", method, auth)
        assert status == 404, (method, path, status, body)
        _assert_envelope(body, "not_found")


def test_a_nested_body_and_an_odd_content_type_are_400_envelopes(stack: LocalStack) -> None:
    auth = {"Authorization": f"Bearer {stack.config.platform_api_key}"}
    for content_type, body in (("application/json", b"[" * 3000), ("image/png", b"\x89PNG")):
        status, _, answer = _request(
            f"{stack.config.api_url}/v1/communities",
            "POST",
            {**auth, "Content-Type": content_type},
            body,
        )
        assert status == 400, answer
        assert answer["error"]["type"] == "invalid_request"


def test_moto_server_keeps_transactions_atomic_under_concurrent_requests(
    stack: LocalStack,
) -> None:
    """Threads run transactions and plain writes on the stack's moto at once: no 5xx, and every
    transaction's items are all there (moto alone answered 500 "dictionary changed size during
    iteration" and could apply half a transaction)."""
    import boto3
    from botocore.config import Config

    env = stack.app_env()
    # No retries: a 500 must show, not be retried away by botocore.
    client = boto3.session.Session(region_name="us-east-1").client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=16),
    )
    table = env["BILLING_TABLE_NAME"]
    errors: list[str] = []
    rounds = 20
    writers = 6

    def write(worker: int) -> None:
        for n in range(rounds):
            pk = f"ATOMIC#{worker}#{n}"
            try:
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": table,
                                "Item": {"pk": {"S": pk}, "sk": {"S": f"part{i}"}},
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        }
                        for i in range(3)
                    ]
                )
                client.put_item(
                    TableName=table, Item={"pk": {"S": f"{pk}#plain"}, "sk": {"S": "plain"}}
                )
            except Exception as error:  # every failure is a finding here
                errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors[:5]
    for worker in range(writers):
        for n in range(rounds):
            got = client.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"ATOMIC#{worker}#{n}"}},
            )
            assert got["Count"] == 3


def test_moto_server_keeps_a_clients_connection_and_logs_only_its_failures(
    stack: LocalStack,
) -> None:
    """One connection carries every request, answers of any size and status, with a chunked
    request body among them (werkzeug's server closed each connection after one answer: a new
    connection and server thread per request). The access log shows no 2xx or 4xx line."""
    import http.client
    import urllib.parse

    env = stack.app_env()
    endpoint = urllib.parse.urlsplit(env["AWS_ENDPOINT_URL"])
    table = env["BILLING_TABLE_NAME"]
    connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=10)
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": (
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }

    def call(target: str, body: dict[str, Any], chunked: bool = False) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        sent = {**headers, "X-Amz-Target": f"DynamoDB_20120810.{target}"}
        if chunked:
            connection.request("POST", "/", body=iter([data[:7], data[7:]]), headers=sent)
        else:
            connection.request("POST", "/", body=data, headers=sent)
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.getheader("Connection") != "close"
        assert not response.will_close
        return response.status, answer

    item = {"pk": {"S": "KEEPALIVE"}, "sk": {"S": "one"}, "blob": {"S": "x" * 50_000}}
    assert call("PutItem", {"TableName": table, "Item": item})[0] == 200
    first_socket = connection.sock
    status, answer = call(
        "PutItem",
        {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"},
    )
    assert status == 400 and "ConditionalCheckFailed" in answer["__type"]
    key = {"pk": {"S": "KEEPALIVE"}, "sk": {"S": "one"}}
    status, answer = call("GetItem", {"TableName": table, "Key": key}, chunked=True)
    assert status == 200 and answer["Item"] == item
    assert connection.sock is first_socket
    connection.close()

    log = (stack.config.log_dir / "moto.log").read_text()
    assert '" 200 ' not in log and '" 400 ' not in log
