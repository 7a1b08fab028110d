"""Masking of personal data for answers and logs (pure: domain modules use it)."""

__all__ = ["mask_id_number", "mask_phone", "mask_email"]


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
