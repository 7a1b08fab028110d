"""Password rules and hashing.

Rules (NIST SP 800-63B / OWASP ASVS 5.0): 8 to 64 characters, any
characters, no composition rules, refused when in the shipped list of common
passwords. Hashing: argon2id with OWASP's minimum (m=19456 KiB, t=2, p=1),
via argon2-cffi. Hashing is CPU-bound: the service runs it through
``eventlet.tpool`` so other green threads keep running (see ``Hasher``).
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import unicodedata
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.common.contract.errors import RuleViolation

__all__ = [
    "check_password_rules",
    "new_hasher",
    "verify_password",
    "COMMON_PASSWORDS_FILE",
]

COMMON_PASSWORDS_FILE = Path(__file__).with_name("data") / "common-passwords.txt"
MIN_LENGTH, MAX_LENGTH = 8, 64


@lru_cache(maxsize=1)
def _common_passwords():
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower()
        for line in lines
        if line.strip() and not line.startswith("#")
    )


def check_password_rules(password):
    """The normalised password, or a RuleViolation naming the rule."""
    password = unicodedata.normalize("NFKC", password or "")
    if len(password) < MIN_LENGTH:
        raise RuleViolation("password_too_short")
    if len(password) > MAX_LENGTH:
        raise RuleViolation("password_too_long")
    if password.lower() in _common_passwords():
        raise RuleViolation("password_too_common")
    return password


def new_hasher(memory_kib=19456, time_cost=2, parallelism=1):
    """argon2id; the defaults are OWASP's minimum, config may raise them."""
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
    )


def verify_password(hasher, stored_hash, password):
    """True if ``password`` matches; never raises for a mismatch."""
    try:
        return hasher.verify(stored_hash, unicodedata.normalize("NFKC", password or ""))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
