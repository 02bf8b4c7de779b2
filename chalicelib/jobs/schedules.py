"""How often each sweep runs, and the worker's size, derived from Stripe's budgets (DESIGN.md,
rate control).

The budget (chalicelib/domain/rate_control.py, `LIVE_LIMITS`): Stripe allows 100 operations/s
per account and 25/s per endpoint; a renewal is one `POST /v1/payment_intents`, so a Stripe
account takes 25 charges/s, of which scheduled work gets 95% (5% stays for the admin API):
`SCHEDULED_PER_ACCOUNT_PER_SECOND` = 23.5/s, less while Stripe answers 429 (AIMD). Every
worker shares it through the token bucket (adapters/dynamodb/rate_buckets.py).

The worker is sized from that budget, not the other way round:
- A renewal holds a thread for about `RENEWAL_SECONDS` (one Stripe call ~0.3-0.5 s, three
  DynamoDB requests ~0.01 s each, the bucket's pacing), so one account at full rate keeps
  ceil(23.5 x 0.6) = 15 renewals in flight.
- A worker runs its batch of WORKER_BATCH_SIZE messages on as many threads.
- The fleet serves ACCOUNTS_AT_FULL_RATE accounts at their full rate at once:
  50 x 15 / 10 = 75 concurrent workers (the SQS event source's MaximumConcurrency, and the
  function's reserved concurrency so that nothing else can starve it). More accounts than that
  share the fleet (each still within its own budget); fewer leave workers idle, never over a
  budget: the bucket, not the concurrency, is what keeps each account within its limit.
"""

from __future__ import annotations

import math

from chalicelib.domain.rate_control import LIVE_LIMITS

SCHEDULED_PER_ACCOUNT_PER_SECOND = LIVE_LIMITS.scheduled_per_second
RENEWAL_SECONDS = 0.6
ACCOUNTS_AT_FULL_RATE = 50
IN_FLIGHT_PER_ACCOUNT = math.ceil(SCHEDULED_PER_ACCOUNT_PER_SECOND * RENEWAL_SECONDS)
WORKER_BATCH_SIZE = 10
WORKER_THREADS = WORKER_BATCH_SIZE
WORKER_MAXIMUM_CONCURRENCY = math.ceil(
    ACCOUNTS_AT_FULL_RATE * IN_FLIGHT_PER_ACCOUNT / WORKER_THREADS
)
WORKER_RESERVED_CONCURRENCY = WORKER_MAXIMUM_CONCURRENCY

RENEWALS_EVERY_MINUTES = 5
FAILED_PAYMENTS_EVERY_MINUTES = 15
EXPIRATIONS_EVERY_MINUTES = 15
RECOVERY_EVERY_MINUTES = 5
# A sweep's Lambda runs until just before its schedule's next tick (infra/cdk/stack.py): a tick
# that ended sooner left the rest of a big backlog to later ticks (chalice's 30 s gave a
# renewal tick ~10 s of sending: ~1 million due renewals took most of a day to be queued), and
# one that ran into the next would sweep beside it (the same due items sent twice).
TICK_MARGIN_SECONDS = 30
LAMBDA_MAX_TIMEOUT_SECONDS = 900


def sweep_timeout_seconds(period_seconds: int) -> int:
    """The Lambda timeout of a sweep scheduled every `period_seconds`."""
    return min(period_seconds - TICK_MARGIN_SECONDS, LAMBDA_MAX_TIMEOUT_SECONDS)


# The groups each sweep reads: chalicelib/jobs/registry.py (`SWEEP_GROUPS`).
