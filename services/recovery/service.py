"""The recovery service: forgot-phone recovery by classmates' vouching,
password reset, duplicate-ID resolution, the in-app inbox.

Entrypoints by area, combined here: ``phone_entrypoints.py`` (forgot phone;
states in ``domain.py``, drawn in ``phone_recovery.mermaid``),
``reset_entrypoints.py`` (password reset), ``duplicate_entrypoints.py``
(duplicate ID and the inbox)."""

import os

from nameko.dependency_providers import Config
from nameko.timer import timer

from services.common.plumbing import base
from services.common.plumbing.clock import Clock
from services.common.plumbing.db import Database
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.rpc import ServiceRpc

# Modules, not classes: `nameko run` takes every class with entrypoints in
# this module's namespace for a service of its own.
from services.recovery import (
    duplicate_entrypoints,
    phone_entrypoints,
    reset_entrypoints,
)
from services.recovery.dependencies import RecoveryKeys
from services.recovery.store import RecoveryStore

__all__ = ["RecoveryService"]


# How often the timer work runs (the e2e tier shortens it to see a dispute
# window end without waiting a minute).
HOUSEKEEPING_SECONDS = float(os.environ.get("RECOVERY_HOUSEKEEPING_SECONDS", 60))


class RecoveryService(
    phone_entrypoints.PhoneRecoveryEntrypoints,
    reset_entrypoints.PasswordResetEntrypoints,
    duplicate_entrypoints.DuplicateEntrypoints,
    base.ServiceBase,
):
    """Entrypoints of the recovery service."""

    name = "recovery"

    db = Database(RecoveryStore)
    outbox = Outbox()  # relays the events db\'s stores queue
    clock = Clock()
    config = Config()
    keys = RecoveryKeys()
    identity = ServiceRpc("identity")
    verification = ServiceRpc("verification")
    registry_sync = ServiceRpc("registry_sync")

    @event_handler("identity", "phone_recovery_applied")
    def recovery_applied(self, payload, envelope):
        self.on_recovery_applied(payload)

    @event_handler("registry_sync", "correction_answered")
    def on_correction_answered(self, payload, envelope):
        """The school answered a correction request: the student reads the
        outcome in the inbox (DOMAIN.md: "the outcome comes back to the
        student's inbox")."""
        self._message(
            payload["account_id"],
            "correction_outcome",
            None,
            {
                "school_code": payload["school_code"],
                "status": payload["status"],
                "code": payload["code"],
            },
            False,
            self.clock(),
        )

    @timer(interval=HOUSEKEEPING_SECONDS)
    def housekeeping(self):
        """Flows past their deadline end; duplicate-ID moves whose dispute
        window ended take effect; photos past retention go."""
        self.expire_flows()
        self.apply_due_moves()
        self.purge_photos()
