"""The refusal every throttle answers with while a key is blocked (identity's
login and username-recovery throttles, recovery's match, reset and vouch
throttles). Pure."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

from services.common.errors import Throttled

__all__ = ["throttle_refusal"]


def throttle_refusal(policy, blocked_until, now):
    """A ``Throttled`` with ``policy.refusal`` and whole seconds to wait
    (rounded up) while ``blocked_until`` is ahead, else None."""
    if blocked_until is None or blocked_until <= now:
        return None
    seconds = max(1, int((blocked_until - now).total_seconds() + 0.999))
    return Throttled(policy.refusal, {"retry_after": seconds})
