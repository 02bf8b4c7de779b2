"""Synthesizes the real stack once per test session, exactly as `make synth` does.

The CDK app runs as its own process (chalice imports the application's `app` module and sets the
stage's environment variables while it packages, which must not leak into the other tests),
with no AWS credentials, no AWS config and no instance metadata: synthesis must need none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# jsii warns on every start that this machine's Node 20 is past its end of life; it works.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
# What `make deploy STAGE=dev BILLING_PUBLIC_URL=...` passes: where the emailed links point.
PUBLIC_URL = "https://billing.dev.club.example"
# ... and the publishable key Stripe.js takes cards with on the pay page and in the console.
PUBLISHABLE_KEY = "pk_test_51DevClubExample"
# Inside pytest-timeout's 300 s per test; a fresh clone downloads the Lambda dependencies first.
SYNTH_TIMEOUT_SECONDS = 280


@dataclass(frozen=True)
class Synthesized:
    stage: str
    template_path: Path
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        return self.of_type("AWS::Serverless::Function")


def offline_env(**extra: str) -> dict[str, str]:
    """This environment without any AWS setting, and with every way to find credentials shut."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


def run_synth(stage: str, outdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "infra/cdk/app.py"],
        cwd=REPO_ROOT,
        env=offline_env(
            BILLING_STAGE=stage,
            CDK_OUTDIR=str(outdir),
            BILLING_PUBLIC_URL=PUBLIC_URL,
            STRIPE_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
        ),
        capture_output=True,
        text=True,
        timeout=SYNTH_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    result = run_synth(STAGE, outdir)
    assert result.returncode == 0, f"synth failed:\n{result.stdout}\n{result.stderr}"
    template_path = outdir / f"{STAGE}.template.json"
    yield Synthesized(STAGE, template_path, json.loads(template_path.read_text()))
