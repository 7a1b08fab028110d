"""The registry_sync service: School registry: schools, roster pushes, registry
verification of accounts."""

from services.common import base
from services.common.db import Database
from services.registry_sync.store import RegistryStore

__all__ = ["RegistrySyncService"]


class RegistrySyncService(base.ServiceBase):
    """Entrypoints of the registry_sync service."""

    name = "registry_sync"

    db = Database(RegistryStore)
