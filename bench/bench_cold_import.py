"""Cold import time of `app` (what every Lambda pays) against a bare `import boto3` (issue 16's
baseline: the ratio's goal is at most 1.2).

Each figure is the median of fresh interpreter processes, measured inside the child with
perf_counter around the import alone (interpreter start-up excluded). The probes run
interleaved (app, boto3, app, boto3, ...) so the machine's load moves both alike; the ratio is
the median of the per-pair ratios. `cold_import_app_with_routes_ms` is what the API function
pays before its first request: the import plus the route table, built on first use
(chalicelib/api/blueprints.py).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS = 15
RATIO_GOAL = 1.2
PROBE = (
    "import time,sys; t=time.perf_counter(); {statement}; "
    "print((time.perf_counter()-t)*1000); "
    "print(*(int(m in sys.modules) for m in ('stripe', 'boto3', 'pydantic')))"
)
APP = "import app"
APP_WITH_ROUTES = "import app; app.app.routes"
BOTO3 = "import boto3"


def _probe(statement: str) -> tuple[float, list[bool]]:
    out = subprocess.run(
        [sys.executable, "-X", "frozen_modules=on", "-c", PROBE.format(statement=statement)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), [flag == "1" for flag in out[1:]]


def run() -> dict[str, float | int | str]:
    app_ms: list[float] = []
    boto3_ms: list[float] = []
    routes_ms: list[float] = []
    loaded = [False, False, False]
    for _ in range(RUNS):
        elapsed, loaded = _probe(APP)
        app_ms.append(elapsed)
        boto3_ms.append(_probe(BOTO3)[0])
        routes_ms.append(_probe(APP_WITH_ROUTES)[0])
    ratio = statistics.median(a / b for a, b in zip(app_ms, boto3_ms, strict=True))
    return {
        "cold_import_app_ms": round(statistics.median(app_ms), 1),
        "cold_import_boto3_ms": round(statistics.median(boto3_ms), 1),
        "cold_import_ratio_app_to_boto3": round(ratio, 2),
        "cold_import_ratio_goal_met": int(ratio <= RATIO_GOAL),
        "cold_import_app_with_routes_ms": round(statistics.median(routes_ms), 1),
        "cold_import_app_loads_stripe": int(loaded[0]),
        "cold_import_app_loads_boto3": int(loaded[1]),
        "cold_import_app_loads_pydantic": int(loaded[2]),
    }
