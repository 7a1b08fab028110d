"""Masking of personal data for answers and logs (pure: domain modules use it)."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import ipaddress

__all__ = ["mask_id_number", "mask_phone", "mask_email", "mask_ip", "mask_device"]


def mask_id_number(value):
    """``11010519491231002X`` -> ``110***********002X``."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_phone(value):
    """``13812345678`` / ``+8613812345678`` -> ``138****5678``."""
    digits = value[-11:]
    return digits[:3] + "****" + digits[-4:]


def mask_email(value):
    """``zhang.san@example.com`` -> ``z***@example.com``."""
    local_part, _, domain = value.partition("@")
    return (local_part[:1] or "*") + "***@" + domain


def mask_ip(value):
    """The network, not the host: ``203.0.113.7`` -> ``203.0.113.*``,
    ``2001:db8::1`` -> ``2001:db8::/48``; ``None`` for anything else."""
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    if address.version == 4:
        return ".".join(str(address).split(".")[:3]) + ".*"
    return str(ipaddress.ip_network(f"{address}/48", strict=False))


def mask_device(value):
    """Enough of a device id for its owner to recognise it: ``dev-ab…9f``."""
    value = str(value or "")
    if len(value) <= 6:
        return "*" * len(value)
    return value[:6] + "…" + value[-2:]
