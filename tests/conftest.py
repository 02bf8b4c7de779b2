"""Shared test settings: no test ever talks to real AWS or real Stripe."""

from __future__ import annotations

import os

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MembershipBilling")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
