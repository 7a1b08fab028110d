"""All SQL of the verification service."""

from services.common.db import Store

__all__ = ["VerificationStore"]


class VerificationStore(Store):
    """Codes, quota ledger, deliveries, captchas."""
