"""Pure rules of issue 3: plans, profiles/access, API keys and cursors (no AWS, no Stripe)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.adapters.clock import FixedClock
from chalicelib.adapters.dynamodb.cursors import CursorCodec
from chalicelib.domain.communities import Community, validate_fee_bps
from chalicelib.domain.errors import Conflict, InvalidRequest
from chalicelib.domain.plans import new_plan
from chalicelib.domain.profiles import Profile, SubscriptionLink
from chalicelib.services.api_keys import ApiKeyService, hash_key

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _plan(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "plan_id": "plan_1",
        "community_id": "com_1",
        "name": "Gold",
        "description": None,
        "currency": "usd",
        "prices": {"year": 10_000, "month": 1000},
        "activation_fee": 0,
        "failed_payment_grace_days": 14,
        "retry_schedule_days": [1, 3],
        "max_members": None,
        "now": NOW,
    }
    fields.update(overrides)
    return new_plan(**fields)


def test_new_plan_orders_prices_and_knows_free() -> None:
    plan = _plan()
    assert list(plan.prices) == ["month", "year"]
    assert (plan.status, plan.free, plan.version) == ("active", False, 0)
    assert _plan(prices={"month": 0}).free is True


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prices": {}}, "prices"),
        ({"prices": {"day": 1}}, "prices.day"),
        ({"prices": {"month": -1}}, "prices.month"),
        ({"activation_fee": -1}, "activation_fee"),
        ({"failed_payment_grace_days": 366}, "failed_payment_grace_days"),
        ({"retry_schedule_days": [2, 2]}, "retry_schedule_days"),
        ({"retry_schedule_days": [14]}, "retry_schedule_days"),
        ({"max_members": 0}, "max_members"),
    ],
)
def test_new_plan_refuses_bad_terms(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        _plan(**overrides)
    assert error.value.details[0].field == field


def test_plan_terms_change_together_and_archive_closes_it() -> None:
    plan = _plan(description="d", max_members=2)
    changed = plan.with_terms(failed_payment_grace_days=30, retry_schedule_days=[5, 20])
    assert (changed.failed_payment_grace_days, changed.retry_schedule_days) == (30, (5, 20))
    assert changed.prices == plan.prices and changed.description == "d"
    cleared = plan.with_terms(clear_description=True, clear_max_members=True)
    assert (cleared.description, cleared.max_members) == (None, None)
    with pytest.raises(InvalidRequest):
        plan.with_terms(failed_payment_grace_days=2)  # retry day 3 would be past grace
    plan.ensure_open_for_new_subscriptions()
    with pytest.raises(Conflict):
        plan.archived().ensure_open_for_new_subscriptions()


def _profile(**overrides: Any) -> Profile:
    base = Profile(
        id="prof_1",
        community_id="com_1",
        kind="customer",
        name="Ann",
        email="ann@x.io",
        account_holder_id=None,
        free_access=False,
        credit_balances={},
        currency="usd",
        created_at=NOW,
    )
    return replace(base, **overrides)


def test_access_needs_free_access_or_membership_of_an_active_or_expiring_subscription() -> None:
    assert _profile().access().has_access is False
    links = (
        SubscriptionLink("sub_owned", "owner", "active", "pm_1"),
        SubscriptionLink("sub_failed", "member", "failed_payment"),
        SubscriptionLink("sub_done", "member", "cancelled"),
        SubscriptionLink("sub_new", "member", "inactive"),
    )
    assert _profile(subscriptions=links).access().has_access is False
    granted = _profile(
        subscriptions=(
            *links,
            SubscriptionLink("sub_a", "member", "active"),
            SubscriptionLink("sub_e", "member", "expiring"),
        )
    ).access()
    assert (granted.has_access, granted.reason, granted.subscription_ids) == (
        True,
        "subscription",
        ("sub_a", "sub_e"),
    )
    free = _profile(free_access=True).access()
    assert (free.has_access, free.reason) == (True, "free_access")


def test_a_card_is_in_use_only_by_live_subscriptions_it_pays_for() -> None:
    profile = _profile(
        subscriptions=(
            SubscriptionLink("sub_1", "owner", "active", "pm_a"),
            SubscriptionLink("sub_2", "owner", "expiring", "pm_a"),
            SubscriptionLink("sub_3", "owner", "failed_payment", "pm_b"),
            SubscriptionLink("sub_4", "owner", "cancelled", "pm_c"),
            SubscriptionLink("sub_5", "owner", "inactive", "pm_d"),
            SubscriptionLink("sub_6", "member", "active"),
        )
    )
    assert profile.live_subscriptions_paying_with("pm_a") == ("sub_1", "sub_2")
    assert profile.live_subscriptions_paying_with("pm_b") == ("sub_3",)
    assert profile.live_subscriptions_paying_with("pm_c") == ()
    assert profile.live_subscriptions_paying_with("pm_d") == ()


def test_dependents_never_get_an_email() -> None:
    kid = _profile(kind="dependent", email=None, account_holder_id="prof_0")
    with pytest.raises(InvalidRequest):
        kid.with_details(email="kid@x.io")
    assert kid.with_details(name="Kiddo", free_access=True).free_access is True


def test_community_fee_applies_only_on_a_connected_account() -> None:
    community = Community("com_1", "C", "usd", None, 500, NOW)
    assert community.fee_bps_for_charges() == 0
    assert replace(community, stripe_account_id="acct_1").fee_bps_for_charges() == 500
    with pytest.raises(InvalidRequest):
        validate_fee_bps(10_001)


@dataclass
class _Stored:
    community_id: str
    secret_hash: str
    revoked: bool = False


class _KeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, _Stored] = {}

    def put_entry(self, key_id: str, community_id: str, secret_hash: str, now: datetime) -> Any:
        self.keys[key_id] = _Stored(community_id, secret_hash)
        return {"Put": key_id}

    def find(self, key_id: str) -> _Stored | None:
        return self.keys.get(key_id)

    def revoke(self, community_id: str, key_id: str, now: datetime) -> None:
        self.keys[key_id].revoked = True


def test_api_keys_resolve_by_id_hash_and_revocation() -> None:
    store = _KeyStore()
    service = ApiKeyService(store, FixedClock(NOW))
    issued, entry = service.new_key("com_1")
    assert entry == {"Put": issued.id}
    assert store.keys[issued.id].secret_hash == hash_key(issued.secret) != issued.secret
    assert service.resolve(issued.secret) == ("com_1", issued.id)
    tampered = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    for bad in (tampered, "", "mbk_", issued.secret + "x", f"mbk_{issued.id}_short"):
        assert service.resolve(bad) is None
    other, _ = service.new_key("com_2")
    forged = f"mbk_{issued.id}_{other.secret.rsplit('_', 1)[-1]}"
    assert service.resolve(forged) is None
    service.revoke("com_1", issued.id)
    assert service.resolve(issued.secret) is None


def test_cursors_are_signed_and_bound_to_their_scope() -> None:
    codec = CursorCodec.from_secret("secret")
    cursor = codec.encode("plans:com_1", {"pk": "a", "sk": "b"})
    assert codec.decode("plans:com_1", cursor) == {"pk": "a", "sk": "b"}
    for scope, text in [
        ("plans:com_2", cursor),
        ("plans:com_1", cursor[:-1]),
        ("plans:com_1", "A" + cursor),
        ("plans:com_1", cursor.replace(".", "")),
        ("plans:com_1", "x" * 3000),
    ]:
        with pytest.raises(InvalidRequest) as error:
            codec.decode(scope, text)
        assert error.value.details[0].field == "starting_after"
    with pytest.raises(InvalidRequest):
        CursorCodec.from_secret("another deployment").decode("plans:com_1", cursor)
