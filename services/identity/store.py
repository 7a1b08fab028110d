"""All SQL of the identity service."""

from services.common.db import Store

__all__ = ["IdentityStore"]


class IdentityStore(Store):
    """Accounts, credentials, sessions (tables arrive with the identity issue)."""
