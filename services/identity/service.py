"""The identity service: Accounts, real-name data, login names, sessions and devices."""

from services.common import base
from services.common.db import Database
from services.identity.store import IdentityStore

__all__ = ["IdentityService"]


class IdentityService(base.ServiceBase):
    """Entrypoints of the identity service."""

    name = "identity"

    db = Database(IdentityStore)
