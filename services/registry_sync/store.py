"""All SQL of the registry_sync service."""

from services.common.db import Store

__all__ = ["RegistryStore"]


class RegistryStore(Store):
    """Schools, roster records, enrolments, change windows, verifications."""
