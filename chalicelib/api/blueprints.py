"""The HTTP routes, registered on the app when its route table is first used.

Every Lambda imports app.py, but only the API function (and chalice local, the test client and
packaging) reads the route table. Building the route modules means building every pydantic
model (and importing pydantic itself, about 100 ms): the scheduled, worker and publisher
functions never pay for it, and the API function pays on its first request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Chalice


def http_blueprints() -> list[Blueprint]:
    """Every route blueprint (importing them fills routing.ROUTES, the OpenAPI source)."""
    from chalicelib.api import (
        billing_history,
        communities,
        console,
        health,
        pay_page,
        payment_links,
        payment_methods,
        payments,
        plans,
        platform_events,
        profiles,
        reports,
        subscriptions,
        test_clock,
        webhooks,
    )

    return [
        health.blueprint,
        webhooks.blueprint,
        communities.blueprint,
        plans.blueprint,
        profiles.blueprint,
        payment_methods.blueprint,
        test_clock.blueprint,
        subscriptions.blueprint,
        payments.blueprint,
        payment_links.blueprint,
        pay_page.blueprint,
        reports.blueprint,
        billing_history.blueprint,
        console.blueprint,
        platform_events.blueprint,
    ]


class LazyRoutesChalice(Chalice):
    """A Chalice app whose route blueprints are registered on the first read of `routes`
    (Chalice's own API handler, chalice local, the test client and `chalice package` all read
    it there). Authorizers, schedules and event sources are registered at import as usual."""

    def __init__(self, app_name: str, route_blueprints: Callable[[], list[Blueprint]]) -> None:
        self._route_blueprints: Callable[[], list[Blueprint]] | None = None
        self._routes: dict[str, dict[str, Any]] = defaultdict(dict)
        super().__init__(app_name=app_name)
        self._route_blueprints = route_blueprints

    @property
    def routes(self) -> dict[str, dict[str, Any]]:
        load, self._route_blueprints = self._route_blueprints, None
        if load is not None:
            for blueprint in load():
                self.register_blueprint(blueprint)
        return self._routes

    @routes.setter
    def routes(self, table: dict[str, dict[str, Any]]) -> None:
        self._routes = table
