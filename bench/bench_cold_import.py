"""Cold import time of `app` (what every Lambda pays) next to a bare `import boto3`.

Each figure is the median of fresh interpreter processes on this machine, measured inside the
child with perf_counter around the import alone (interpreter start-up excluded).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS = 9
PROBE = (
    "import time,sys; t=time.perf_counter(); import {module}; "
    "print((time.perf_counter()-t)*1000); "
    "print(int('stripe' in sys.modules), int('boto3' in sys.modules))"
)


def _measure(module: str) -> tuple[float, bool, bool]:
    samples = []
    stripe_loaded = boto3_loaded = False
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-X", "frozen_modules=on", "-c", PROBE.format(module=module)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        samples.append(float(out[0]))
        stripe_loaded, boto3_loaded = out[1] == "1", out[2] == "1"
    return statistics.median(samples), stripe_loaded, boto3_loaded


def run() -> dict[str, float | int | str]:
    app_ms, app_stripe, app_boto3 = _measure("app")
    boto3_ms, _, _ = _measure("boto3")
    return {
        "cold_import_app_ms": round(app_ms, 1),
        "cold_import_boto3_ms": round(boto3_ms, 1),
        "cold_import_app_loads_stripe": int(app_stripe),
        "cold_import_app_loads_boto3": int(app_boto3),
    }
