"""localstripe for the local stack and the tests, without its per-write cost.

localstripe pickles its whole store to /tmp/localstripe.pickle after every object it saves
and again after every POST, PUT and DELETE, and lists any kind of object (a charge's refunds,
which every charge it answers with shows) by walking the whole store. Both grow with
everything it ever made: at 500 subscriptions a renewal's PaymentIntent cost localstripe
~160 ms of CPU, most of it pickling. The local stack always starts it from scratch, so the
dump is never read back (and every localstripe on the machine wrote the same file).

`in_memory_store()` makes the dump a no-op and also keeps the store's objects by kind, so a
listing walks its own kind only: the same objects in the same order. `payment_intent_search()`
answers Stripe's PaymentIntent search by metadata, which localstripe lacks. Everything else is
localstripe unchanged; `main()` starts it with its own arguments, always `--from-scratch`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any


def in_memory_store() -> Callable[[], None]:
    """Patch localstripe's store as above (before it serves); returns the undo."""
    from localstripe import resources

    store = resources.store
    original_class = type(store)
    original_list_all = resources.StripeObject.__dict__["_api_list_all"]

    class KindIndexedStore(original_class):  # type: ignore[misc, valid-type]
        """The store, also by kind (`<object>:<id>` keys), kept in memory only."""

        by_kind: dict[str, dict[str, Any]]

        def __setitem__(self, key: str, value: Any) -> None:
            dict.__setitem__(self, key, value)
            self.by_kind.setdefault(_kind_of(key), {})[key] = value

        def __delitem__(self, key: str) -> None:
            dict.__delitem__(self, key)
            self.by_kind.get(_kind_of(key), {}).pop(key, None)

        def clear(self) -> None:
            dict.clear(self)
            self.by_kind.clear()

        def update(self, *args: Any, **kwargs: Any) -> None:
            for key, value in dict(*args, **kwargs).items():
                self[key] = value

        def dump_to_disk(self) -> None:
            pass

    def list_all(
        cls: Any, /, url: str, limit: Any = None, starting_after: Any = None, **kwargs: Any
    ) -> Any:
        # localstripe's StripeObject._api_list_all, reading the kind's own objects.
        if kwargs:
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        listed = resources.List(url, limit=limit, starting_after=starting_after)
        listed._list = list(store.by_kind.get(cls.object, {}).values())
        return listed

    by_kind: dict[str, dict[str, Any]] = {}
    for key, value in store.items():
        by_kind.setdefault(_kind_of(key), {})[key] = value
    store.by_kind = by_kind
    store.__class__ = KindIndexedStore
    resources.StripeObject._api_list_all = classmethod(list_all)

    def undo() -> None:
        store.__class__ = original_class
        del store.by_kind
        resources.StripeObject._api_list_all = original_list_all

    return undo


def _kind_of(key: str) -> str:
    return key.split(":", 1)[0]


SEARCH_PATH = "/v1/payment_intents/search"
METADATA_QUERY = re.compile(r"^metadata\['([^']+)'\]:'([^']*)'$")


def payment_intent_search() -> Callable[[], None]:
    """Stripe's `GET /v1/payment_intents/search` for the one query the product sends,
    `metadata['key']:'value'` (localstripe has no search API); returns the undo.

    Without it the Stripe adapter falls back to listing every PaymentIntent, which it gives up
    on after LIST_MAX_PAGES pages: on a local stack or a soak that had made a few thousand
    intents, recovery could no longer find the intent of a charge whose answer was lost, and
    such payments stayed pending for good. Other queries answer 400 as Stripe does for a query
    it cannot parse. Added as a middleware, since localstripe's `/v1/payment_intents/{id}`
    route would take `search` for an id."""
    from aiohttp import web
    from localstripe import resources, server

    @web.middleware
    async def search(request: Any, handler: Any) -> Any:
        if request.method != "GET" or request.path != SEARCH_PATH:
            return await handler(request)
        query = METADATA_QUERY.match(request.query.get("query", ""))
        if query is None:
            error = {
                "type": "invalid_request_error",
                "message": "localstripe searches PaymentIntents by metadata['key']:'value' only",
            }
            return web.json_response({"error": error}, status=400)
        key, value = query.groups()
        limit = int(request.query.get("limit", "10"))
        intents = resources.store.by_kind.get(resources.PaymentIntent.object, {}).values()
        found = [i for i in intents if (i.metadata or {}).get(key) == value]
        return web.json_response(
            {
                "object": "search_result",
                "url": SEARCH_PATH,
                "data": [intent._export() for intent in reversed(found)][:limit],
                "has_more": len(found) > limit,
                "next_page": None,
            }
        )

    server.app.middlewares.append(search)

    def undo() -> None:
        server.app.middlewares.remove(search)

    return undo


def main() -> None:
    from localstripe.server import start

    in_memory_store()
    payment_intent_search()
    if "--from-scratch" not in sys.argv:
        sys.argv.append("--from-scratch")  # nothing is on disk to start from
    start()


if __name__ == "__main__":
    main()
