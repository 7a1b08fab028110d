"""The recovery service: Forgot-phone recovery by classmates' vouching, password reset,
duplicate-ID resolution, inbox."""

from services.common import base
from services.common.db import Database
from services.recovery.store import RecoveryStore

__all__ = ["RecoveryService"]


class RecoveryService(base.ServiceBase):
    """Entrypoints of the recovery service."""

    name = "recovery"

    db = Database(RecoveryStore)
