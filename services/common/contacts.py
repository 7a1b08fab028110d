"""Phones and emails as every service stores them: mainland mobiles in E.164
(phonenumbers), emails with the domain lower-cased. Pure."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import re

import phonenumbers

from services.common.errors import InvalidRequest

__all__ = ["normalise_mobile", "normalise_email", "MOBILE_PATTERN", "EMAIL_PATTERN"]

EMAIL_PATTERN = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
_EMAIL = re.compile(EMAIL_PATTERN)
# What the gateway publishes and enforces for a mainland mobile: the national
# mobile pattern of phonenumbers' own metadata (the library that validates
# it here), with an optional +86 / 86 prefix and no separators.
MOBILE_PATTERN = (
    r"^(?:\+?86)?(?:"
    + phonenumbers.PhoneMetadata.metadata_for_region(
        "CN"
    ).mobile.national_number_pattern
    + r")$"
)
_MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)


def normalise_mobile(raw):
    """``13812345678`` / ``+86 138 1234 5678`` -> ``+8613812345678``."""
    try:
        number = phonenumbers.parse((raw or "").strip(), "CN")
    except phonenumbers.NumberParseException:
        raise InvalidRequest("phone_invalid") from None
    if (
        number.country_code != 86
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in _MOBILE_TYPES
    ):
        raise InvalidRequest("phone_invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw):
    email = (raw or "").strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidRequest("email_invalid")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"
