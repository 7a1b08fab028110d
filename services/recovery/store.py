"""All SQL of the recovery service."""

from services.common.db import Store

__all__ = ["RecoveryStore"]


class RecoveryStore(Store):
    """Phone recoveries, vouches, duplicate-ID reviews, inbox."""
