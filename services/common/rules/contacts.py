"""Phones and emails as every service stores them: mainland mobiles in E.164
(phonenumbers), emails with the domain lower-cased. Pure."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import re
import unicodedata
from datetime import date

import phonenumbers

from services.common.contract.errors import InvalidRequest, ServiceError
from services.common.rules.realname import normalise_id

__all__ = [
    "channel_of",
    "normalise_mobile",
    "normalise_email",
    "canonical_login",
    "canonical_text",
    "MOBILE_PATTERN",
    "EMAIL_PATTERN",
    "PASSPORT_ID",
    "PASSPORT_ALPHABET",
]

# No 0/O or 1/I/L: people read passport IDs aloud and type them from paper.
PASSPORT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PASSPORT_ID = re.compile(rf"^P[{PASSPORT_ALPHABET}]{{12}}$")
_RESIDENT_SHAPE = re.compile(r"\d{15}|\d{17}[\dX]")
_MOBILE_SHAPE = re.compile(r"(\+?86)?1\d{10}")

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


# What a typed mobile may hold besides its digits: phonenumbers' parser
# skips anything else ("13812345678*" parsed as the number).
_MOBILE_CHARACTERS = re.compile(r"[+\d\s()-]+")


def normalise_mobile(raw):
    """``13812345678`` / ``+86 138 1234 5678`` -> ``+8613812345678``."""
    if not _MOBILE_CHARACTERS.fullmatch((raw or "").strip()):
        raise InvalidRequest("phone_invalid")
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


def canonical_text(raw):
    """Free text as a key: NFKC (full-width letters and digits folded), no
    whitespace anywhere, upper case. ``ＢＪ 101`` and ``bj101`` are one key."""
    text = unicodedata.normalize("NFKC", raw or "")
    return "".join(ch for ch in text if not ch.isspace()).upper()


def channel_of(destination):
    """The channel a destination is written for: an address with ``@`` is
    an email, anything else is meant as a phone (the one place this rule
    is written)."""
    return "email" if "@" in (destination or "") else "sms"


def canonical_login(raw, today=None):
    """``(kind, value)``: the one spelling of a login name — a phone, an
    email, a passport ID or an ID number — that every service keys its
    throttles and lookups by, whatever way it was typed (full-width digits,
    spaces inside, a lower-case ``x``, a 15-digit legacy resident ID).
    ``kind`` is ``phone``, ``email``, ``passport``, ``id_number``, or
    ``unknown`` (shaped like an address or a mobile but not a valid one).
    ``today``: the Beijing date for the legacy-ID conversion's checks."""
    text = unicodedata.normalize("NFKC", raw or "")
    text = "".join(ch for ch in text if not ch.isspace())
    if channel_of(text) == "email":
        try:
            return "email", normalise_email(text)
        except InvalidRequest:
            return "unknown", text.casefold()
    upper = text.upper()
    if PASSPORT_ID.match(upper):
        return "passport", upper
    digits = upper.replace("-", "")
    if _MOBILE_SHAPE.fullmatch(digits):
        try:
            return "phone", normalise_mobile(digits)
        except InvalidRequest:
            return "unknown", digits
    if _RESIDENT_SHAPE.fullmatch(upper):
        try:
            return "id_number", normalise_id(
                "resident_id", upper, today or date.today()
            ).number
        except ServiceError:
            pass  # not a valid resident ID: keyed as typed (canonical form)
    return "id_number", upper
