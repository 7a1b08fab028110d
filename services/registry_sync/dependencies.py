"""Dependency providers of the registry_sync service."""

import base64

from nameko.extensions import DependencyProvider

from services.common.crypto import Sealer, keyed_hash

__all__ = ["RegistryKeys"]


class _Keys:
    def __init__(self, token_key, seal_key, lookup_key):
        self._token_key = token_key
        self._lookup_key = lookup_key
        # The same construction as identity's (AES-GCM bound to its purpose,
        # HMAC-SHA256 for lookups), with this service's own keys.
        self.id_sealer = Sealer(seal_key, b"registry_id_number")
        self.submission_sealer = Sealer(seal_key, b"registry_submission")

    def school_token_hash(self, token):
        return keyed_hash(self._token_key, "school_token", token)

    def id_hash(self, number):
        """Lookup hash of a normalised ID number (type-independent: a student
        gives the number, not always its type)."""
        return keyed_hash(self._lookup_key, "id_number", number)


class RegistryKeys(DependencyProvider):
    """``SCHOOL_TOKEN_KEY`` (HMAC), ``REGISTRY_ID_SEAL_KEY`` (AES-GCM) and
    ``REGISTRY_ID_LOOKUP_KEY`` (HMAC): base64, 32 bytes each."""

    def setup(self):
        keys = []
        for name in (
            "SCHOOL_TOKEN_KEY",
            "REGISTRY_ID_SEAL_KEY",
            "REGISTRY_ID_LOOKUP_KEY",
        ):
            key = base64.b64decode(self.container.config[name])
            if len(key) != 32:
                raise ValueError(f"{name} must be 32 bytes (base64)")
            keys.append(key)
        self.keys = _Keys(*keys)

    def get_dependency(self, worker_ctx):
        return self.keys
