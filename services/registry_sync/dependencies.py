"""Dependency providers of the registry_sync service."""

import base64

from nameko.extensions import DependencyProvider

from services.common.crypto import keyed_hash

__all__ = ["RegistryKeys"]


class _Keys:
    def __init__(self, token_key):
        self._token_key = token_key

    def school_token_hash(self, token):
        return keyed_hash(self._token_key, "school_token", token)


class RegistryKeys(DependencyProvider):
    """``SCHOOL_TOKEN_KEY`` (HMAC, base64, 32 bytes)."""

    def setup(self):
        key = base64.b64decode(self.container.config["SCHOOL_TOKEN_KEY"])
        if len(key) != 32:
            raise ValueError("SCHOOL_TOKEN_KEY must be 32 bytes (base64)")
        self.keys = _Keys(key)

    def get_dependency(self, worker_ctx):
        return self.keys
