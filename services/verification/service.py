"""The verification service's composition root: SMS and email codes, their
quota ledger and delivery; image captchas; security notices.

Entrypoints by area, combined here: ``code_entrypoints.py`` (codes and
captchas; the quota plan is ``quota.py``, the code's states
``code_lifecycle.mermaid``), ``notice_entrypoints.py`` and
``receipt_entrypoints.py`` (delivery receipts; ``delivery_states.mermaid``)
and ``pumping_entrypoints.py`` (ops' view of SMS pumping suspensions; the
judging is ``pumping.py``, run by the ``PumpingWatch`` provider). Delivery runs in
the ``DeliveryQueue`` provider (``dependencies.py``, ``providers.py``)."""

from nameko.dependency_providers import Config

from services.common.plumbing import base
from services.common.plumbing.clock import Clock
from services.common.plumbing.db import Database
from services.common.plumbing.outbox import Outbox

# Modules, not classes: `nameko run` takes every class with entrypoints in
# this module's namespace for a service of its own.
from services.verification import (
    code_entrypoints,
    notice_entrypoints,
    pumping_entrypoints,
    receipt_entrypoints,
)
from services.verification.dependencies import (
    DeliveryQueue,
    Keys,
    Policies,
    PumpingWatch,
)
from services.verification.store import VerificationStore

__all__ = ["VerificationService"]


class VerificationService(
    code_entrypoints.CodeEntrypoints,
    notice_entrypoints.NoticeEntrypoints,
    receipt_entrypoints.ReceiptEntrypoints,
    pumping_entrypoints.PumpingEntrypoints,
    base.ServiceBase,
):
    name = "verification"

    db = Database(VerificationStore)
    outbox = Outbox()  # relays the events db's stores queue
    clock = Clock()
    config = Config()
    policies = Policies()
    keys = Keys()
    delivery = DeliveryQueue()
    pumping = PumpingWatch()  # SMS pumping: suspensions by conversion
