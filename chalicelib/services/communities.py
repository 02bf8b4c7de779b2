"""Community use cases (platform key): create with a first API key, read, change, keys."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from chalicelib.adapters.dynamodb.codec import whole_seconds
from chalicelib.domain.communities import Community, validate_fee_bps
from chalicelib.domain.currencies import supported_currency
from chalicelib.domain.ids import new_id
from chalicelib.observability import log_config_change
from chalicelib.services.api_keys import ApiKeyService, IssuedKey
from chalicelib.services.ports import Clock

_UNSET: Any = object()


class CommunityStore(Protocol):
    def create(self, community: Community, extra: list[dict[str, Any]] | None = None) -> None: ...
    def get(self, community_id: str) -> Community: ...
    def save_changes(
        self, before: Community, after: Community, reconnect: bool = False
    ) -> None: ...
    def write_if_exists(self, community_id: str, entries: list[dict[str, Any]]) -> None: ...


class CommunityService:
    def __init__(self, store: CommunityStore, keys: ApiKeyService, clock: Clock) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock

    def create(
        self,
        name: str,
        currency: str,
        stripe_account_id: str | None,
        application_fee_bps: int,
    ) -> tuple[Community, IssuedKey]:
        validate_fee_bps(application_fee_bps)
        supported_currency(currency)
        community = Community(
            id=new_id("com"),
            name=name,
            currency=currency,
            stripe_account_id=stripe_account_id,
            application_fee_bps=application_fee_bps,
            created_at=whole_seconds(self._clock.now()),
        )
        key, key_entry = self._keys.new_key(community.id)
        self._store.create(community, extra=[key_entry])
        log_config_change(
            "community_created",
            community.id,
            key_id=key.id,
            stripe_account_id=stripe_account_id,
            application_fee_bps=application_fee_bps,
        )
        return community, key

    def update(
        self,
        community_id: str,
        name: str = _UNSET,
        stripe_account_id: str | None = _UNSET,
        application_fee_bps: int = _UNSET,
    ) -> Community:
        before = self._store.get(community_id)
        after = before
        if name is not _UNSET:
            after = replace(after, name=name)
        if stripe_account_id is not _UNSET:
            after = replace(after, stripe_account_id=stripe_account_id)
        if application_fee_bps is not _UNSET:
            validate_fee_bps(application_fee_bps)
            after = replace(after, application_fee_bps=application_fee_bps)
        # Setting the account again (even the same id) is the operator's reconnect after a
        # Stripe deauthorization: it lifts the refusal to charge.
        reconnect = stripe_account_id is not _UNSET and stripe_account_id is not None
        if after != before or reconnect:
            self._store.save_changes(before, after, reconnect=reconnect)
            log_config_change(
                "community_updated",
                community_id,
                changed=sorted(
                    name
                    for name in ("name", "stripe_account_id", "application_fee_bps")
                    if getattr(after, name) != getattr(before, name)
                ),
                stripe_account_id=after.stripe_account_id,
                application_fee_bps=after.application_fee_bps,
            )
        return after

    def issue_key(self, community_id: str) -> IssuedKey:
        key, entry = self._keys.new_key(community_id)
        self._store.write_if_exists(community_id, [entry])
        log_config_change("api_key_issued", community_id, key_id=key.id)
        return key

    def revoke_key(self, community_id: str, key_id: str) -> None:
        self._store.get(community_id)
        self._keys.revoke(community_id, key_id)
        log_config_change("api_key_revoked", community_id, key_id=key_id)
