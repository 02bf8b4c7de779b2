"""Community API keys: issued once, stored only as a hash, looked up by key id.

A key reads `mbk_<key_id>_<secret>` where the secret is 32 random bytes (256 bits, base64url).
Because the secret has that much entropy, a plain SHA-256 of the key is a safe verifier: a slow
password hash (bcrypt, scrypt) only helps against guessing low-entropy secrets, and would cost
every request tens of milliseconds. The key id inside the key lets us fetch exactly one item;
the digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain.ids import new_id
from chalicelib.services.ports import Clock

KEY_PREFIX = "mbk_"
_KEY_PATTERN = re.compile(r"^mbk_(key_[0-9a-f]{20})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class IssuedKey:
    id: str
    secret: str


class StoredKeyView(Protocol):
    @property
    def community_id(self) -> str: ...
    @property
    def secret_hash(self) -> str: ...
    @property
    def revoked(self) -> bool: ...


class ApiKeyStore(Protocol):
    def put_entry(
        self, key_id: str, community_id: str, secret_hash: str, now: datetime
    ) -> dict[str, Any]: ...

    def find(self, key_id: str) -> StoredKeyView | None: ...

    def revoke(self, community_id: str, key_id: str, now: datetime) -> None: ...


def hash_key(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, store: ApiKeyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def new_key(self, community_id: str) -> tuple[IssuedKey, dict[str, Any]]:
        """A fresh key and the TransactWriteItems entry that stores its hash."""
        key_id = new_id("key")
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        entry = self._store.put_entry(key_id, community_id, hash_key(secret), self._clock.now())
        return IssuedKey(key_id, secret), entry

    def resolve(self, token: str) -> tuple[str, str] | None:
        """(community_id, key_id) for a valid, unrevoked key; None for anything else."""
        match = _KEY_PATTERN.match(token)
        if match is None:
            return None
        key_id = match.group(1)
        stored = self._store.find(key_id)
        if stored is None or stored.revoked:
            return None
        if not hmac.compare_digest(stored.secret_hash.encode(), hash_key(token).encode()):
            return None
        return stored.community_id, key_id

    def revoke(self, community_id: str, key_id: str) -> None:
        self._store.revoke(community_id, key_id, self._clock.now())
