"""The local publisher loop: delivers events to the platform within 2 s of the change.

Every `--interval` seconds (default 0.25) it publishes the outbox records not yet published
(from the sparse index: moto has no DynamoDB Streams shards to walk) and makes every due
delivery. In AWS the Streams handler does the same (chalicelib/jobs/event_publisher.py). It
skips its ticks while a test-clock advance holds the lease (the advance publishes itself).
"""

from __future__ import annotations

import argparse
import signal
import time

from chalicelib.bootstrap import container
from chalicelib.jobs.event_publisher import run_local
from chalicelib.observability import logger


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()
    running = {"on": True}

    def stop(_signum: int, _frame: object) -> None:
        running["on"] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    while running["on"]:
        box = container()
        try:
            if not (box.settings.test_clock_enabled and box.advance_lease.held()):
                result = run_local(box)
                if result.published or result.delivered or result.failed:
                    logger.info("publisher_tick", extra=result.__dict__)
        except Exception:
            logger.exception("publisher_tick_failed")
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
