"""Dependency providers of the identity service: keys for ID numbers, and
the password hasher that keeps argon2 off the event loop."""

import base64

from eventlet import tpool
from nameko.extensions import DependencyProvider

from services.common.crypto import Sealer
from services.identity.passwords import new_hasher, verify_password

__all__ = ["IdentityKeys", "PasswordHasher"]


class _Keys:
    def __init__(self, seal_key, lookup_key):
        self.id_sealer = Sealer(seal_key, b"id_number")
        self.id_lookup_key = lookup_key


class IdentityKeys(DependencyProvider):
    """``ID_SEAL_KEY`` (AES-GCM) and ``ID_LOOKUP_KEY`` (HMAC), base64, 32 bytes."""

    def setup(self):
        config = self.container.config
        self.keys = _Keys(
            base64.b64decode(config["ID_SEAL_KEY"]),
            base64.b64decode(config["ID_LOOKUP_KEY"]),
        )

    def get_dependency(self, worker_ctx):
        return self.keys


class _GreenHasher:
    def __init__(self, hasher):
        self._hasher = hasher

    def hash(self, password):
        # argon2 takes tens of milliseconds of CPU: a real thread, so the
        # service's other green threads keep running meanwhile.
        return tpool.execute(self._hasher.hash, password)

    def verify(self, stored_hash, password):
        return tpool.execute(verify_password, self._hasher, stored_hash, password)


class PasswordHasher(DependencyProvider):
    """argon2id with ``ARGON2_MEMORY_KIB`` / ``ARGON2_TIME_COST`` / ``ARGON2_PARALLELISM``."""

    def setup(self):
        config = self.container.config
        self.hasher = _GreenHasher(
            new_hasher(
                memory_kib=int(config.get("ARGON2_MEMORY_KIB", 19456)),
                time_cost=int(config.get("ARGON2_TIME_COST", 2)),
                parallelism=int(config.get("ARGON2_PARALLELISM", 1)),
            )
        )

    def get_dependency(self, worker_ctx):
        return self.hasher
