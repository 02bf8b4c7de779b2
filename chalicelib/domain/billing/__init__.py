"""Billing: what a subscription operation charges and how the charge resolves.

- `lines`: payment kinds, order lines, credit line, charge keys (shared with `payments`).
- `charges`: `PlanSnapshot`, `PendingCharge`, `ChargePlan`.
- `pricing`: plan lines, activation fees, proration and credit application.
- `planning`: `plan_activation`, `plan_renewal`, ... -> `ChargePlan`.
- `outcomes`: `begin_charge`, `apply_charge_succeeded`, `apply_charge_failed`,
  `settle_without_stripe`: the subscription transitions a charge's result causes.

This package's `__init__` imports nothing, so importing one module never imports the others.
"""
