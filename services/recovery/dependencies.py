"""Dependency providers of the recovery service: its keys."""

import base64

from nameko.extensions import DependencyProvider

from services.common.plumbing.crypto import Sealer, keyed_hash

__all__ = ["RecoveryKeys"]


class _Keys:
    def __init__(self, hash_key, link_key, seal_key):
        self._hash_key = hash_key
        self.link_key = link_key
        # Bound to their use: a sealed phone cannot be opened as a photo.
        self.flow_sealer = Sealer(seal_key, b"recovery_flow")
        self.photo_sealer = Sealer(seal_key, b"recovery_photo")
        self.inbox_sealer = Sealer(seal_key, b"recovery_inbox")

    def hash(self, *parts):
        """Keyed hash: requester and share tokens, old phones, throttle keys,
        decoy derivation. Never the plaintext."""
        return keyed_hash(self._hash_key, *parts)

    def digest(self, *parts):
        return bytes.fromhex(self.hash(*parts))


class RecoveryKeys(DependencyProvider):
    """``RECOVERY_HASH_KEY`` (HMAC), ``RECOVERY_LINK_KEY`` (signs share and
    "not me" links), ``RECOVERY_SEAL_KEY`` (AES-GCM): base64, 32 bytes each."""

    def setup(self):
        config = self.container.config
        keys = []
        for name in ("RECOVERY_HASH_KEY", "RECOVERY_LINK_KEY", "RECOVERY_SEAL_KEY"):
            key = base64.b64decode(config[name])
            if len(key) != 32:
                raise ValueError(f"{name} must be 32 bytes (base64)")
            keys.append(key)
        self.keys = _Keys(*keys)

    def get_dependency(self, worker_ctx):
        return self.keys
