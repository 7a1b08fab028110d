"""The recovery service's composition root: forgot-phone recovery by
classmates' vouching, password reset, duplicate-ID resolution, the in-app
inbox.

Entrypoints by area, combined here, each self-contained:
``phone_entrypoints.py`` (forgot phone; states in ``domain.py``, drawn in
``phone_recovery.mermaid``), ``reset_entrypoints.py`` (password reset),
``duplicate_entrypoints.py`` (duplicate ID — ``duplicate_move.mermaid`` —,
the review queue and the inbox). What they share is a provider declared
below: ``policy`` (every setting), ``throttles``, ``mailbox``, ``vouching``."""

from services.common.plumbing import base
from services.common.plumbing.clock import Clock
from services.common.plumbing.db import Database
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.rpc import ServiceRpc
from services.common.plumbing.throttle_store import Throttles

# Modules, not classes: `nameko run` takes every class with entrypoints in
# this module's namespace for a service of its own.
from services.recovery import (
    duplicate_entrypoints,
    phone_entrypoints,
    reset_entrypoints,
)
from services.recovery.dependencies import Inbox, Policies, RecoveryKeys, Vouching
from services.recovery.store import RecoveryStore

__all__ = ["RecoveryService"]


class RecoveryService(
    phone_entrypoints.PhoneRecoveryEntrypoints,
    reset_entrypoints.PasswordResetEntrypoints,
    duplicate_entrypoints.DuplicateEntrypoints,
    base.ServiceBase,
):
    name = "recovery"

    db = Database(RecoveryStore)
    outbox = Outbox()  # relays the events db's stores queue
    clock = Clock()
    keys = RecoveryKeys()
    policy = Policies()
    # Throttle rows are shared by many requests: each count is its own
    # autocommitted statement.
    throttles = Throttles(alone=True)
    mailbox = Inbox()  # posts to the in-app inbox (the `inbox` RPC reads it)
    vouching = Vouching()  # the share link's and the inbox's vouch
    identity = ServiceRpc("identity")
    verification = ServiceRpc("verification")
    registry_sync = ServiceRpc("registry_sync")
