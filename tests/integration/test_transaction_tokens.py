"""Every commit is one TransactWriteItems with a ClientRequestToken of its own, which botocore's
own retry sends again: DynamoDB answers a retry of an attempt it applied (whose answer was
lost to a timeout) with success for 10 minutes, instead of failing it on the conditions the
first attempt changed (found by an outside probe: an activation whose first write's answer was
lost came back 409 "in progress" and was never charged; a full refund came back "nothing left").

moto ignores the token, so what is checked here is what our adapter sends: a token on every
commit, a new one per commit, and the same one on botocore's retry of a timed-out attempt."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ReadTimeoutError

from chalicelib.adapters.dynamodb.transactions import commit_transaction
from tests.integration.conftest import TABLE_NAME, Env, env

__all__ = ["env"]


def put(key: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": TABLE_NAME,
            "Item": {"pk": {"S": f"TOKEN#{key}"}, "sk": {"S": "ITEM"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def test_a_commit_retried_after_a_timeout_sends_the_same_token(env: Env) -> None:
    client = env.container.dynamodb
    attempts: list[str] = []

    def first_attempt_times_out(request: Any, **_: Any) -> None:
        attempts.append(json.loads(request.body)["ClientRequestToken"])
        if len(attempts) == 1:
            raise ReadTimeoutError(endpoint_url=request.url)

    event = "before-send.dynamodb.TransactWriteItems"
    client.meta.events.register_first(event, first_attempt_times_out)
    try:
        commit_transaction(client, [put("a")])
        commit_transaction(client, [put("b")])
    finally:
        client.meta.events.unregister(event, first_attempt_times_out)

    first, retry, second_commit = attempts
    assert first == retry  # botocore's retry of the same commit: DynamoDB deduplicates it
    assert second_commit != first  # another commit: its own token
    assert all(len(token) == 32 for token in attempts)
    key = {"pk": {"S": "TOKEN#a"}, "sk": {"S": "ITEM"}}
    assert "Item" in client.get_item(TableName=TABLE_NAME, Key=key)
