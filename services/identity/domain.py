"""Identity rules that are not about one document or one password: passport
IDs and what a registration becomes when its ID number is already taken.
(Real-name rules: ``realname.py``; passwords: ``passwords.py``.)"""

import secrets

from services.common.errors import Conflict

__all__ = ["new_passport_id", "registration_status", "PASSPORT_ALPHABET"]

# No 0/O or 1/I/L: people read passport IDs aloud and type them from paper.
PASSPORT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_passport_id():
    """Immutable and not guessable: 12 random symbols (~59 bits), ``P`` first."""
    return "P" + "".join(secrets.choice(PASSPORT_ALPHABET) for _ in range(12))


def registration_status(active_holder_of_id, register_anyway):
    """``active``, or ``duplicate_pending`` when the user insists although an
    active account already holds the ID number; otherwise refused, pointing
    to username recovery (the usual case: they forgot they registered)."""
    if active_holder_of_id is None:
        return "active"
    if register_anyway:
        return "duplicate_pending"
    raise Conflict("id_already_registered", {"see": "/api/v1/username-recovery"})
