"""Rules of the school registry that need no broker or database.

Schools (this part): a school's API token is 256 random bits with a
recognisable prefix, stored only as a keyed hash; what an audit record may
hold.
"""

import secrets

__all__ = ["new_school_token", "TOKEN_PREFIX", "audit_object_ids"]

# Recognisable in a leaked config file or a secret scanner's rules.
TOKEN_PREFIX = "sch_"


def new_school_token():
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def audit_object_ids(**ids):
    """The ids an audit record names, as strings; ``None`` ones left out.
    Only identifiers (codes, account ids, import ids) go here, never names,
    numbers or contacts."""
    return {key: str(value) for key, value in ids.items() if value is not None}
