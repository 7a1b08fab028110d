"""The verification service: SMS and email codes, their quota ledger and
delivery; image captchas."""

from services.common import base
from services.common.db import Database
from services.verification.store import VerificationStore

__all__ = ["VerificationService"]


class VerificationService(base.ServiceBase):
    """Entrypoints of the verification service."""

    name = "verification"

    db = Database(VerificationStore)
