"""The local stack: moto server, localstripe, the AWS resources, chalice local and a scheduler loop.

`make run` calls `main()`. The e2e tests start the same `LocalStack` on free ports.
Every child runs in its own process group; `stop()` (and Ctrl-C) ends each group, so nothing
is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
LOCAL_STAGE = "local"
STARTUP_TIMEOUT_SECONDS = 60.0


class StackError(RuntimeError):
    """A one-line, user-facing reason why the stack could not start."""


@dataclass
class StackConfig:
    billing_port: int = 8000
    # Stripe's deliveries reach a chalice process of their own (`webhooks`), as concurrent
    # Lambda instances would: one process took them alongside a test-clock advance's renewals,
    # and both queued behind its one GIL (bench/README.md, "The local stack under load").
    webhook_port: int = 8001
    stripe_port: int = 8420
    moto_port: int = 5000
    platform_api_key: str = "local-platform-key"
    stripe_secret_key: str = "sk_test_local"
    webhook_secret: str = "whsec_local"
    scheduler_interval_seconds: float = 5.0
    # Fewer due-index shards than deployed (16): every test-clock step queries each shard, and a
    # moto query walks the whole table. Every process of the stack gets the same number.
    due_index_shards: int = 2
    run_scheduler: bool = True
    # RFC 3339; the stored test clock starts there on first use (None: at the wall clock).
    test_clock_start: str | None = None
    run_publisher: bool = True  # events to the platform, within 2 s of the change
    publisher_interval_seconds: float = 0.25
    log_dir: Path = field(default_factory=lambda: REPO_ROOT / ".local-stack" / "logs")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        source = os.environ if env is None else env
        return cls(
            billing_port=int(source.get("BILLING_PORT", "8000")),
            webhook_port=int(source.get("BILLING_WEBHOOK_PORT", "8001")),
            stripe_port=int(source.get("STRIPE_PORT", "8420")),
            moto_port=int(source.get("MOTO_PORT", "5000")),
            platform_api_key=source.get("BILLING_PLATFORM_API_KEY", "local-platform-key"),
            stripe_secret_key=source.get("STRIPE_SECRET_KEY", "sk_test_local"),
            webhook_secret=source.get("STRIPE_WEBHOOK_SECRET", "whsec_local"),
            scheduler_interval_seconds=float(source.get("SCHEDULER_INTERVAL_SECONDS", "5")),
            test_clock_start=source.get("BILLING_TEST_CLOCK_START") or None,
            due_index_shards=int(source.get("BILLING_DUE_INDEX_SHARDS", "2")),
            log_dir=Path(
                source.get("LOCAL_STACK_LOG_DIR", str(REPO_ROOT / ".local-stack" / "logs"))
            ),
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.billing_port}"

    @property
    def webhooks_process_url(self) -> str:
        """The same app as `api_url`, served by the process that takes Stripe's deliveries."""
        return f"http://127.0.0.1:{self.webhook_port}"

    @property
    def webhook_url(self) -> str:
        """Where localstripe posts its events."""
        return f"{self.webhooks_process_url}/webhooks/stripe"

    @property
    def stripe_url(self) -> str:
        return f"http://127.0.0.1:{self.stripe_port}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def table_name(self) -> str:
        return f"membership-billing-{LOCAL_STAGE}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, name: str) -> None:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            if sock.connect_ex((host, port)) == 0:
                raise StackError(f"port {port} ({name}) is already in use; set {name} to another")


def wait_for_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StackError(f"{url} exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # the server answers; that is all we wait for
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.2)
    raise StackError(f"{url} did not answer within {timeout:.0f} s")


def api_server_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "infra.local.api_server",
        "--project-dir",
        str(REPO_ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stage",
        LOCAL_STAGE,
    ]


def localstripe_command(port: int) -> list[str]:
    return [sys.executable, "-m", "infra.local.localstripe_server", "--port", str(port)]


@contextlib.contextmanager
def standalone_localstripe() -> Iterator[str]:
    """A localstripe of its own on a free port (tests, benchmarks); yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        localstripe_command(port),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/v1/customers", STARTUP_TIMEOUT_SECONDS, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.resources: dict[str, str] = {}

    def app_env(self) -> dict[str, str]:
        """Environment for everything that runs the app against this stack."""
        cfg = self.config
        env = dict(os.environ)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": cfg.moto_url,
                "BILLING_STAGE": LOCAL_STAGE,
                "BILLING_TABLE_NAME": cfg.table_name,
                "BILLING_TEST_CLOCK": "true",
                "BILLING_PLATFORM_API_KEY": cfg.platform_api_key,
                "STRIPE_SECRET_KEY": cfg.stripe_secret_key,
                "STRIPE_WEBHOOK_SECRET": cfg.webhook_secret,
                "STRIPE_API_BASE": cfg.stripe_url,
                "BILLING_API_URL": cfg.api_url,
                "BILLING_PUBLIC_URL": cfg.api_url,
                "BILLING_DUE_INDEX_SHARDS": str(cfg.due_index_shards),
                # The moto server serializes requests, so a step's actions may run together.
                # 8 threads: an advance of 500 renewals took 11.4-12.1 s (4 threads: 13.7-14.8 s)
                # on a busy machine, since moto's per-request cost went down; before that, 8
                # threads contended for the API process's GIL (bench/README.md).
                "BILLING_TEST_CLOCK_CONCURRENCY": "8",
                "BILLING_EVENT_BUS_NAME": f"membership-billing-{LOCAL_STAGE}",
                # botocore does not check requests against the model: moto does as it parses
                # them (chalicelib/config.py).
                "BILLING_LEAN_AWS_CLIENT": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("BILLING_TEST_CLOCK_START", None)  # only this stack's own setting applies
        if cfg.test_clock_start:
            env["BILLING_TEST_CLOCK_START"] = cfg.test_clock_start
        env.update({key.upper(): value for key, value in self.resources.items()})
        return env

    def start(self) -> None:
        cfg = self.config
        if cfg.test_clock_start:
            from chalicelib.config import Settings

            try:
                Settings.from_env({"BILLING_TEST_CLOCK_START": cfg.test_clock_start})
            except ValueError as error:
                raise StackError(str(error)) from None
        for port, name in (
            (cfg.billing_port, "BILLING_PORT"),
            (cfg.webhook_port, "BILLING_WEBHOOK_PORT"),
            (cfg.stripe_port, "STRIPE_PORT"),
            (cfg.moto_port, "MOTO_PORT"),
        ):
            ensure_port_free(port, name)
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            # moto's server behind one lock (infra/local/moto_server.py): DynamoDB's atomicity.
            self._spawn(
                "moto",
                [
                    sys.executable,
                    "-m",
                    "infra.local.moto_server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(cfg.moto_port),
                ],
            )
            # localstripe without its pickle of the whole store after every write
            # (infra/local/localstripe_server.py).
            self._spawn("localstripe", localstripe_command(cfg.stripe_port))
            wait_for_http(
                f"{cfg.moto_url}/moto-api/", STARTUP_TIMEOUT_SECONDS, self.processes["moto"]
            )
            wait_for_http(
                f"{cfg.stripe_url}/v1/customers",
                STARTUP_TIMEOUT_SECONDS,
                self.processes["localstripe"],
            )
            self.resources = create_resources(self.app_env())
            register_webhook(cfg)
            # chalice's local server with the deployed gateway's error envelope (api_server.py):
            # one for the API's callers, one for Stripe's deliveries (StackConfig.webhook_port).
            self._spawn("api", api_server_command(cfg.billing_port))
            self._spawn("webhooks", api_server_command(cfg.webhook_port))
            wait_for_http(f"{cfg.api_url}/healthz", STARTUP_TIMEOUT_SECONDS, self.processes["api"])
            wait_for_http(
                f"{cfg.webhooks_process_url}/healthz",
                STARTUP_TIMEOUT_SECONDS,
                self.processes["webhooks"],
            )
            if cfg.run_publisher:
                self._spawn(
                    "publisher",
                    [
                        sys.executable,
                        "-m",
                        "infra.local.publisher",
                        "--interval",
                        str(cfg.publisher_interval_seconds),
                    ],
                )
            if cfg.run_scheduler:
                self._spawn(
                    "scheduler",
                    [
                        sys.executable,
                        "-m",
                        "infra.local.scheduler",
                        "--interval",
                        str(cfg.scheduler_interval_seconds),
                    ],
                )
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, command: list[str]) -> None:
        log_path = self.config.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            self.processes[name] = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.app_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()

    def cpu_seconds(self) -> dict[str, float]:
        """The CPU time (user + system) each running process of the stack has used so far,
        from /proc/<pid>/stat: what a step costs the stack whatever else the machine runs
        (wall times on a shared machine move with its load). Empty where /proc is not."""
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        used: dict[str, float] = {}
        for name, process in self.processes.items():
            try:
                stat = Path(f"/proc/{process.pid}/stat").read_text()
            except OSError:
                continue
            # Fields after the command (which may hold spaces) start after its closing ")".
            fields = stat.rpartition(")")[2].split()
            used[name] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        return used

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def create_resources(env: Mapping[str, str]) -> dict[str, str]:
    """Create the table, queues and email identity on moto from the definitions in code."""
    import boto3

    from chalicelib.adapters.dynamodb.schema import ensure_table
    from chalicelib.adapters.event_bus import ensure_event_bus
    from chalicelib.adapters.queues import ensure_queues

    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    endpoint = env["AWS_ENDPOINT_URL"]
    ensure_table(session.client("dynamodb", endpoint_url=endpoint), env["BILLING_TABLE_NAME"])
    queues = ensure_queues(session.client("sqs", endpoint_url=endpoint), LOCAL_STAGE)
    sender = env.get("BILLING_EMAIL_SENDER", "billing@example.com")
    session.client("ses", endpoint_url=endpoint).verify_email_identity(EmailAddress=sender)
    ensure_event_bus(session.client("events", endpoint_url=endpoint), env["BILLING_EVENT_BUS_NAME"])
    return {
        "billing_work_queue_url": queues["work_queue_url"],
        "billing_dead_letter_queue_url": queues["dead_letter_queue_url"],
    }


def register_webhook(config: StackConfig) -> None:
    """Point localstripe's webhooks at our /webhooks/stripe, signed with our secret."""
    data = urllib.parse.urlencode(
        {"url": config.webhook_url, "secret": config.webhook_secret}
    ).encode()
    request = urllib.request.Request(
        f"{config.stripe_url}/_config/webhooks/billing", data=data, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def main() -> int:
    config = StackConfig.from_env()
    stack = LocalStack(config)
    stopping: dict[str, Any] = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["signal"] = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # A shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(f"starting the local stack (logs in {config.log_dir}) ...", flush=True)
        stack.start()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(
        "\n".join(
            [
                "membership billing is running:",
                f"  API          {config.api_url}   (GET /healthz, /v1/openapi.json)",
                f"  console      {config.api_url}/console/",
                f"  localstripe  {config.stripe_url}",
                f"  moto         {config.moto_url}",
                f"  platform key {config.platform_api_key}",
                f"  webhooks     localstripe -> {config.webhook_url} "
                "(the same app, a process of its own)",
                f"  test clock   starts at {config.test_clock_start or 'the wall clock'}",
                f"  events       bus membership-billing-{LOCAL_STAGE} on moto; "
                "HTTPS endpoints per community, delivered within 2 s:",
                f"    curl -X POST {config.api_url}/v1/webhook-endpoints \\",
                '      -H "Authorization: Bearer <community key>" \\',
                "      -H 'Content-Type: application/json' \\",
                """      -d '{"url": "http://127.0.0.1:9999/hooks", "enabled_events": ["*"]}'""",
                "    (the answer's secret verifies Billing-Signature: "
                "receivers/billing_signature.py)",
                "Ctrl-C stops everything.",
            ]
        ),
        flush=True,
    )
    try:
        while True:
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    print(
                        f"error: {name} exited with code {process.returncode}; "
                        f"see {config.log_dir / (name + '.log')}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
