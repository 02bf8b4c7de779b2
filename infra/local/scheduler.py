"""The local scheduler loop: runs every scheduled job on an interval against the test clock."""

from __future__ import annotations

import argparse
import signal
import time

from chalicelib.bootstrap import container
from chalicelib.jobs.local_runner import run_once
from chalicelib.observability import logger


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    running = {"on": True}

    def stop(_signum: int, _frame: object) -> None:
        running["on"] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    while running["on"]:
        try:
            sent = run_once(container())
            if any(sent.values()):
                logger.info("scheduler_tick", extra={"sent": sent})
        except Exception:
            logger.exception("scheduler_tick_failed")
        deadline = time.monotonic() + args.interval
        while running["on"] and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
