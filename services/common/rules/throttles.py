"""The one throttle model of the platform (identity's login and
username-recovery throttles, recovery's match, reset and vouch throttles)
and the refusal each answers with while its key is blocked. Pure; the rows
live in each service's ``throttles`` table, written by
``services.common.plumbing.throttle_store``."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import ipaddress
from dataclasses import dataclass, replace
from datetime import timedelta

from services.common.contract.errors import Throttled

__all__ = ["ThrottlePolicy", "throttle_refusal", "address_key"]


@dataclass(frozen=True)
class ThrottlePolicy:
    """Attempts under one key (``prefix:subject``) are counted; the first
    ``free`` cost nothing. Past them, one of two ways to block:

    * **back-off** (``base`` and ``cap`` set): each further failure blocks
      for ``base * 2**(extra-1)``, at most ``cap``; never permanent — the
      count starts again once no failure came for ``window`` (identity's
      logins and username recovery);
    * **window** (no ``base``): the count covers ``window`` from its first
      attempt; the attempt past ``free`` blocks until that window ends
      (recovery's match, reset-code and vouch throttles).
    """

    prefix: str
    free: int
    window: timedelta
    refusal: str = "too_frequent"
    base: timedelta | None = None
    cap: timedelta | None = None

    @property
    def backs_off(self):
        return self.base is not None

    def key(self, subject):
        return f"{self.prefix}:{subject}"

    def with_limit(self, free):
        """The same policy with the free count a deployment configured."""
        return replace(self, free=int(free))

    def block_after(self, failures):
        """Back-off: how long the ``failures``-th failure blocks (zero while
        free)."""
        extra = failures - self.free
        if extra <= 0 or not self.backs_off:
            return timedelta(0)
        return min(self.base * 2 ** (extra - 1), self.cap)

    def blocked_until(self, count, window_start, now):
        """When the ``count``-th attempt of the window that began at
        ``window_start`` stops blocking the key; None while it is free."""
        if count <= self.free:
            return None
        if self.backs_off:
            return now + self.block_after(count)
        return window_start + self.window


def address_key(raw):
    """The client a per-address limit counts: an IPv4 address alone (/32),
    an IPv6 address by its /64 — one subscriber's prefix, inside which a
    client picks a fresh address at will — and an IPv4-mapped IPv6 address
    as the IPv4 address it is. Anything unparsable counts as itself; no
    address at all as ``unknown``."""
    text = (raw or "").strip()
    if not text:
        return "unknown"
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def throttle_refusal(policy, blocked_until, now):
    """A ``Throttled`` with ``policy.refusal`` and whole seconds to wait
    (rounded up) while ``blocked_until`` is ahead, else None."""
    if blocked_until is None or blocked_until <= now:
        return None
    seconds = max(1, int((blocked_until - now).total_seconds() + 0.999))
    return Throttled(policy.refusal, {"retry_after": seconds})
