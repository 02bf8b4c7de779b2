"""The local stack as a new user meets it: `python -m infra.local.stack` (what `make run` runs)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from infra.local.stack import REPO_ROOT, LocalStack, free_port
from tests.support.clock_start import clock_start_text

pytestmark = pytest.mark.e2e


def _get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_stack_serves_healthz_and_openapi(stack: LocalStack) -> None:
    status, body = _get_json(f"{stack.config.api_url}/healthz")
    assert status == 200
    assert body["ok"] is True
    status, document = _get_json(f"{stack.config.api_url}/v1/openapi.json")
    assert (status, document["openapi"]) == (200, "3.1.0")


def test_each_process_reports_the_cpu_it_used(stack: LocalStack) -> None:
    """`make load` reports each process's CPU per advance from these figures."""
    before = stack.cpu_seconds()
    assert {"moto", "localstripe", "api", "webhooks"} <= set(before)
    busy_until = time.monotonic() + 0.5
    while time.monotonic() < busy_until:  # the API at work
        _get_json(f"{stack.config.api_url}/v1/openapi.json")
    after = stack.cpu_seconds()
    assert after["api"] > before["api"]
    assert all(after[name] >= seconds >= 0 for name, seconds in before.items())


def test_stack_created_the_resources_and_registered_the_webhook(stack: LocalStack) -> None:
    import boto3

    env = stack.app_env()
    assert env["BILLING_TEST_CLOCK_START"] == clock_start_text()  # chalice local and scheduler
    session = boto3.session.Session(region_name="us-east-1")
    ddb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"])
    table = ddb.describe_table(TableName=env["BILLING_TABLE_NAME"])["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} >= {"gsi1", "due"}
    ttl = ddb.describe_time_to_live(TableName=env["BILLING_TABLE_NAME"])
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    sqs = session.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
    attributes = sqs.get_queue_attributes(
        QueueUrl=env["BILLING_WORK_QUEUE_URL"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    assert "deadLetterTargetArn" in attributes["RedrivePolicy"]


def _stack_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BILLING_PORT=str(free_port()),
        BILLING_WEBHOOK_PORT=str(free_port()),
        STRIPE_PORT=str(free_port()),
        MOTO_PORT=str(free_port()),
        SCHEDULER_INTERVAL_SECONDS="1",
        LOCAL_STACK_LOG_DIR=str(tmp_path),
    )
    return env


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(entry.name)
            found |= {child} | _children_of(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_make_run_answers_healthz_and_ctrl_c_leaves_nothing_running(tmp_path: Path) -> None:
    env = _stack_env(tmp_path)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children: set[int] = set()
    try:
        url = f"http://127.0.0.1:{env['BILLING_PORT']}/healthz"
        while time.monotonic() - started < 90:
            children |= _children_of(process.pid)
            try:
                status, _ = _get_json(url)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the stack did not answer /healthz within 90 s")
        assert status == 200
        time.sleep(1.5)  # let the scheduler loop tick at least once
        children |= _children_of(process.pid)
        assert len(children) >= 5  # moto, localstripe, chalice local twice, scheduler
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "membership billing is running" in output
    assert env["BILLING_PORT"] in output and "local-platform-key" in output
    assert f"{env['BILLING_WEBHOOK_PORT']}/webhooks/stripe" in output
    time.sleep(0.5)
    assert [pid for pid in children if _alive(pid)] == []
    for name in ("BILLING_PORT", "BILLING_WEBHOOK_PORT", "STRIPE_PORT", "MOTO_PORT"):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(env[name]))) != 0, name


def test_a_taken_port_gives_a_one_line_error_naming_it(tmp_path: Path) -> None:
    env = _stack_env(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(env["STRIPE_PORT"])))
        blocker.listen()
        result = subprocess.run(
            [sys.executable, "-m", "infra.local.stack"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1
    assert env["STRIPE_PORT"] in error_lines[0] and "STRIPE_PORT" in error_lines[0]


def test_a_bad_test_clock_start_gives_a_one_line_error_naming_it(tmp_path: Path) -> None:
    env = {**_stack_env(tmp_path), "BILLING_TEST_CLOCK_START": "next tuesday"}
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.stack"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and "BILLING_TEST_CLOCK_START" in error_lines[0], error_lines
