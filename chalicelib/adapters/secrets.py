"""Secrets for the current stage: the environment locally, Secrets Manager when deployed."""

from __future__ import annotations

import threading
import time

from chalicelib.config import (
    SECRETS_CACHE_SECONDS,
    Secrets,
    Settings,
    secrets_from_env,
    secrets_from_json,
)


class SecretsProvider:
    """Secrets for the current stage, cached for a few minutes so rotation is picked up."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: Secrets | None = None
        self._loaded_at = 0.0

    def get(self) -> Secrets:
        if self._settings.is_local or not self._settings.secrets_arn:
            return secrets_from_env()
        with self._lock:
            fresh = time.monotonic() - self._loaded_at < SECRETS_CACHE_SECONDS
            if self._cached is None or not fresh:
                self._cached = self._load_from_secrets_manager(self._settings.secrets_arn)
                self._loaded_at = time.monotonic()
            return self._cached

    def _load_from_secrets_manager(self, arn: str) -> Secrets:
        from chalicelib.adapters.aws import aws_client

        response = aws_client("secretsmanager", self._settings).get_secret_value(SecretId=arn)
        return secrets_from_json(response["SecretString"])
