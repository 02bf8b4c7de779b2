"""`make bench`: runs every benchmark module, prints a table, writes bench/results/latest.json.

Each module `bench/bench_*.py` exposes `run() -> dict[str, float | int | str]`; its keys are
merged into one result file so figures from different benchmarks sit side by side.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "latest.json"


def main(selected: list[str]) -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # keep the figures readable
    modules = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    if selected:
        modules = [m for m in modules if any(s in m for s in selected)]
    results: dict[str, Any] = {}
    if RESULTS.exists():
        results = json.loads(RESULTS.read_text())
    results["_machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in modules:
        print(f"== {name}", flush=True)
        figures = importlib.import_module(f"bench.{name}").run()
        for key, value in figures.items():
            print(f"  {key:<45} {value}")
        results.update(figures)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
