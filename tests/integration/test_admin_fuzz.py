"""Hypothesis throws malformed input at every admin route: never a 500, and a refused request
stores nothing (a 400 stores nothing at all; other refusals store at most their idempotency
record, which exists to replay that very answer)."""

from __future__ import annotations

import json
import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.api.blueprints import http_blueprints
from chalicelib.api.routing import ROUTES, Auth, RouteSpec
from tests.integration.admin_helpers import call, item_counts, new_community, shared_env
from tests.integration.conftest import PLATFORM_KEY, Env

__all__ = ["shared_env"]

ADMIN_TAGS = {"communities", "plans", "profiles", "payment methods"}


def _specs() -> list[RouteSpec]:
    http_blueprints()  # imports every route module, which fills ROUTES

    return sorted((s for s in ROUTES if s.tag in ADMIN_TAGS), key=lambda s: (s.path, s.method))


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["usd", "month", "customer", "acct_1", "pm_1", "prof_1", "", " "])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _field_names(spec: RouteSpec) -> list[str]:
    names = list(spec.body.model_fields) if spec.body is not None else []
    return [*names, "prices", "month", "extra", ""]


@st.composite
def requests(
    draw: st.DrawFn, ids: dict[str, list[str]]
) -> tuple[RouteSpec, str, bytes, dict[str, str]]:
    spec = draw(st.sampled_from(_specs()))
    path = spec.path
    for name in spec.path_params:
        value = draw(st.sampled_from([*ids.get(name, []), "x", "prof_0", "plan_0", "pm_0"]))
        path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
    query_names = list(spec.query.model_fields) if spec.query is not None else []
    query = draw(
        st.dictionaries(
            st.sampled_from([*query_names, "bogus"]),
            st.text(alphabet=st.characters(codec="ascii"), max_size=12),
            max_size=3,
        )
    )
    if query:
        path += "?" + urllib.parse.urlencode(query)
    body = draw(
        st.one_of(
            st.dictionaries(st.sampled_from(_field_names(spec)), json_values, max_size=5).map(
                lambda d: json.dumps(d).encode()
            ),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.binary(max_size=40),
            st.just(b"{" * 70_000),
        )
    )
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=260)
        )
    return spec, path, body, headers


def test_malformed_input_never_gives_500_and_stores_nothing(shared_env: Env) -> None:
    env = shared_env
    tenant = new_community(env)
    plan = call(env, "POST", "/v1/plans", {"name": "P", "prices": {"month": 5}}, key=tenant.key)
    customer = call(
        env,
        "POST",
        "/v1/profiles",
        {"kind": "customer", "name": "C", "email": "c@x.io"},
        key=tenant.key,
    )
    # Payment-method routes get a dependent (400 before any Stripe call) or unknown ids.
    dependent = call(
        env,
        "POST",
        "/v1/profiles",
        {"kind": "dependent", "name": "D", "account_holder_id": customer.body["id"]},
        key=tenant.key,
    )
    ids = {
        "community_id": [tenant.id],
        "plan_id": [plan.body["id"]],
        "profile_id": [dependent.body["id"], customer.body["id"]],
        "payment_method_id": ["pm_1"],
        "key_id": ["key_0"],
    }
    seen_statuses: set[int] = set()
    baseline = [item_counts()]

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(ids))
    def run(request: tuple[RouteSpec, str, bytes, dict[str, str]]) -> None:
        spec, path, body, headers = request
        if spec.path.endswith("payment-methods") and spec.method == "POST":
            path = path.replace(customer.body["id"], dependent.body["id"])
        if spec.path.endswith("setup-intents"):
            path = path.replace(customer.body["id"], dependent.body["id"])
        key = PLATFORM_KEY if spec.auth is Auth.PLATFORM else tenant.key
        before_all, before_data = baseline[0]
        reply = call(env, spec.method, path, key=key, headers=headers, raw=body)
        seen_statuses.add(reply.status)
        assert reply.status < 500, (spec.method, path, body[:200], reply.body)
        after_all, after_data = baseline[0] = item_counts()
        if reply.status >= 400:
            assert reply.body["error"]["type"]
            assert after_data == before_data, (path, body[:200])
        if reply.status == 400:
            assert after_all == before_all
            assert reply.body["error"]["details"], reply.body

    assert len(_specs()) >= 20
    run()
    assert {200, 201, 400, 404} <= seen_statuses, seen_statuses
