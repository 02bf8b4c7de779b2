"""Every Lambda imports app.py: it must not pay for what only some paths need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Powertools imports the bare `botocore` package (<1 ms) for its user agent; botocore's client
# machinery, like boto3 and stripe, must wait for the first path that calls AWS or Stripe.
HEAVY = ("stripe", "boto3", "botocore.session", "botocore.client", "requests", "aiohttp", "moto")


def test_importing_app_loads_no_sdk_and_creates_no_client() -> None:
    probe = (
        "import json, sys; import app; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_importing_app_builds_no_api_model_and_the_route_table_loads_on_first_read() -> None:
    """The scheduled and worker functions never import pydantic; the API's route table (and
    every route) is there as soon as Chalice, chalice local or the test client reads it."""
    probe = (
        "import json, sys; import app; before = 'pydantic' in sys.modules; "
        "routes = app.app.routes; "
        "print(json.dumps([before, 'pydantic' in sys.modules, "
        "sorted(routes['/v1/plans']), sorted(routes['/webhooks/stripe'])]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    before, after, plan_methods, webhook_methods = json.loads(
        result.stdout.strip().splitlines()[-1]
    )
    assert (before, after) == (False, True)
    assert plan_methods == ["GET", "POST"]
    assert webhook_methods == ["POST"]
