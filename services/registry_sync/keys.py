"""registry_sync's keys and what each is for, in one place: the service and
its import worker must seal and hash with the same purposes, or ID numbers
sealed by one could not be opened (nor found) by the other.

    SCHOOL_TOKEN_KEY        HMAC: school API tokens (stored as keyed hashes)
    REGISTRY_ID_SEAL_KEY    AES-GCM: ID numbers and students' submissions
    REGISTRY_ID_LOOKUP_KEY  HMAC: ID-number lookups

Pure (cryptography + hmac), keys passed in."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import base64

from services.common.plumbing.crypto import Sealer, keyed_hash

__all__ = ["RegistryKeySet", "keys_from", "KEY_NAMES"]

# The same construction as identity's (AES-GCM bound to its purpose,
# HMAC-SHA256 for lookups), with this service's own keys.
ID_NUMBER_PURPOSE = b"registry_id_number"
SUBMISSION_PURPOSE = b"registry_submission"
KEY_NAMES = ("SCHOOL_TOKEN_KEY", "REGISTRY_ID_SEAL_KEY", "REGISTRY_ID_LOOKUP_KEY")


class RegistryKeySet:
    def __init__(self, token_key, seal_key, lookup_key):
        self._token_key = token_key
        self._lookup_key = lookup_key
        self.id_sealer = Sealer(seal_key, ID_NUMBER_PURPOSE)
        self.submission_sealer = Sealer(seal_key, SUBMISSION_PURPOSE)

    def school_token_hash(self, token):
        return keyed_hash(self._token_key, "school_token", token)

    def id_hash(self, number):
        """Lookup hash of a normalised ID number (type-independent: a student
        gives the number, not always its type)."""
        return keyed_hash(self._lookup_key, "id_number", number)


def keys_from(settings, names=KEY_NAMES):
    """The key set from base64 settings (a service's config or the worker's
    environment); each named key must be 32 bytes. The import worker needs
    no token key (``names`` without it)."""
    keys = {}
    for name in names:
        key = base64.b64decode(settings[name])
        if len(key) != 32:
            raise ValueError(f"{name} must be 32 bytes (base64)")
        keys[name] = key
    return RegistryKeySet(
        keys.get("SCHOOL_TOKEN_KEY"),
        keys["REGISTRY_ID_SEAL_KEY"],
        keys["REGISTRY_ID_LOOKUP_KEY"],
    )
