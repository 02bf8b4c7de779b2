"""How often each sweep runs and how hard the worker may push Stripe (DESIGN.md section 8).

Worker concurrency, the arithmetic:
- Stripe's live rate limit is 100 operations per second per account. The scheduled work gets
  at most half of it (50/s); the rest stays free for the admin API, webhooks' reconciliation
  and the recovery pass's look-ups.
- One message = one subscription = at most one Stripe call (a renewal or retry creates one
  PaymentIntent; expirations and grace-end cancellations make none).
- A worker handles its batch one message at a time, so one worker makes at most
  1 / (fastest Stripe round trip) calls per second. A confirmed off-session PaymentIntent takes
  no less than ~0.3 s on live Stripe, so one worker makes <= 3.3 calls/s.
- MAXIMUM_CONCURRENCY = 15 workers -> <= 15 x 3.3 = 50 calls/s, the budget above. At a typical
  0.6 s per renewal (Stripe + three DynamoDB requests) that is 25 renewals/s, so a million
  subscriptions renewing on the same day take ~11 h: inside the day and inside the rate limit.
  (stripe-python also retries a 429 with back-off, so a burst above the budget slows down
  instead of failing.)
- Lambda's SQS event-source `MaximumConcurrency` is what enforces the 15 (2..1000 allowed).
"""

from __future__ import annotations

STRIPE_LIVE_RATE_LIMIT_PER_SECOND = 100
STRIPE_BUDGET_PER_SECOND = STRIPE_LIVE_RATE_LIMIT_PER_SECOND // 2
FASTEST_STRIPE_CALL_SECONDS = 0.3
WORKER_BATCH_SIZE = 10
WORKER_MAXIMUM_CONCURRENCY = int(STRIPE_BUDGET_PER_SECOND * FASTEST_STRIPE_CALL_SECONDS)

RENEWALS_EVERY_MINUTES = 5
FAILED_PAYMENTS_EVERY_MINUTES = 15
EXPIRATIONS_EVERY_MINUTES = 15
RECOVERY_EVERY_MINUTES = 5
# The groups each sweep reads: chalicelib/jobs/registry.py (`SWEEP_GROUPS`).
