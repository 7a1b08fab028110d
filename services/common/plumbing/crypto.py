"""Symmetric sealing (AES-GCM) and keyed hashes, for personal data at rest
and for one-time secrets. Pure (cryptography + hmac), keys passed in."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import hashlib
import hmac
import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Sealer", "keyed_hash"]


# One encoder for every value: json.dumps with an option builds a new one
# per call, and an import seals every student's ID number.
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


class Sealer:
    """AES-GCM with a random 96-bit nonce per value; ``purpose`` is bound as
    associated data so a value sealed for one use cannot be opened as another."""

    def __init__(self, key, purpose=b""):
        if len(key) != 32:
            raise ValueError("a sealing key must be 32 bytes (base64 in config)")
        self._aead = AESGCM(key)
        self._purpose = purpose

    def seal(self, value):
        nonce = os.urandom(12)
        plain = _encode_json(value).encode()
        return nonce + self._aead.encrypt(nonce, plain, self._purpose)

    def open(self, sealed):
        sealed = bytes(sealed)
        return json.loads(self._aead.decrypt(sealed[:12], sealed[12:], self._purpose))


def keyed_hash(key, *parts):
    """HMAC-SHA256 over the parts (unit-separated): lookups without plaintext."""
    message = "\x1f".join(str(p) for p in parts).encode()
    return hmac.digest(key, message, hashlib.sha256).hex()
