"""The refusal every throttle answers with while a key is blocked (identity's
login and username-recovery throttles, recovery's match, reset and vouch
throttles). Pure."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import ipaddress

from services.common.contract.errors import Throttled

__all__ = ["throttle_refusal", "address_key"]


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
