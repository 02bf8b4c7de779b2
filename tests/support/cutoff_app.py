"""The app on moto with localstripe behind the cut-off layer, driven through its API with one
community's key (the scheduling lifecycle and dunning integration tests build on it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib import bootstrap
from tests.integration.conftest import Env
from tests.support.localstripe import new_card, stripe_for
from tests.support.stripe_cutoff import StripeCutoff
from tests.support.webhook_flow import ok


@dataclass
class CutoffApp:
    env: Env
    box: bootstrap.Container
    cutoff: StripeCutoff
    key: str = ""

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        return ok(self.env.client, method, path, self.key, body)

    def card(self, owner_id: str, number: str) -> str:
        """A card made on localstripe and attached to `owner_id` through the API."""
        method_id = new_card(stripe_for(self.cutoff.target), number)
        self.ok(
            "post",
            f"/v1/profiles/{owner_id}/payment-methods",
            {"stripe_payment_method_id": method_id},
        )
        return method_id
