"""Billing: what a charge is made of, below `subscriptions` (which holds a `PendingCharge`).

- `lines`: payment kinds, order lines, credit line, charge keys (shared with `payments`).
- `charges`: `PlanSnapshot`, `PendingCharge`, `ChargePlan`.
- `pricing`: plan lines, activation fees, proration and credit application.

Above `subscriptions`, in `chalicelib.domain`: `charge_planning` (`plan_activation`,
`plan_renewal`, ... -> `ChargePlan`) and `charge_outcomes` (`begin_charge`,
`apply_charge_succeeded`, `apply_charge_failed`, `settle_without_stripe`: the subscription
transitions a charge's result causes). Neither is in this package: they read `Subscription`,
which reads this package, and import-linter keeps sibling packages free of circles.

This package's `__init__` imports nothing, so importing one module never imports the others.
"""
