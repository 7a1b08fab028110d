"""Real-name rules: ID documents (GB 11643 resident ID and its relatives)
and personal names. Pure functions; every failure is a ``RuleViolation``
whose code names the rule that failed.

    normalise_id("resident_id", " 110105491231002 ", today)  -> IdCheck("11010519491231002X", ...)
    check_name("張三")  -> RuleViolation("name_traditional", {"suggestion": "张三"})
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import operator
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from services.common.contract.errors import RuleViolation
from services.common.contract.vocabulary import ID_TYPES

__all__ = [
    "ID_TYPES",
    "IdCheck",
    "normalise_id",
    "comparable_label",
    "check_name",
    "resident_check_char",
    "birth_date_of",
    "is_minor",
    "to_simplified",
    "PROVINCE_CODES",
    "comparable_name",
]


# GB/T 2260 province-level codes, plus 71 (Taiwan) and 81/82 (HK/Macao),
# which resident IDs may carry; 83 only appears on residence permits.
PROVINCE_CODES = frozenset(
    {
        11,
        12,
        13,
        14,
        15,
        21,
        22,
        23,
        31,
        32,
        33,
        34,
        35,
        36,
        37,
        41,
        42,
        43,
        44,
        45,
        46,
        50,
        51,
        52,
        53,
        54,
        61,
        62,
        63,
        64,
        65,
        71,
        81,
        82,
    }
)
HMT_PERMIT_PREFIXES = {"810000": "hong_kong", "820000": "macao", "830000": "taiwan"}

# ISO 7064 MOD 11-2 as GB 11643 applies it: weight of position i is 2^(17-i) mod 11.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "10X98765432"
# Compiled once: an import checks every ID number of a roster.
_SPACES = re.compile(r"\s+")
_RESIDENT_18 = re.compile(r"\d{17}[\dX]")
_RESIDENT_15 = re.compile(r"\d{15}")
_PASSPORT = re.compile(r"[A-Z0-9]{5,17}")
_PERMANENT_2004 = re.compile(r"[A-Z]{3}\d{12}")
_PERMANENT_2023 = re.compile(r"9\d{16}[\dX]")
_OTHER_ID = re.compile(r"[A-Z0-9-]{4,32}")


@dataclass(frozen=True)
class IdCheck:
    """A valid, normalised ID number and what it tells."""

    id_type: str
    number: str
    birth_date: date | None = None
    warnings: tuple = field(default=())  # soft checks that failed, e.g. region


def resident_check_char(first17):
    if len(first17) != 17:
        raise ValueError("the check character is computed over 17 digits")
    return _CHECK_CHARS[sum(map(operator.mul, map(int, first17), _WEIGHTS)) % 11]


def _clean(raw):
    # NFKC folds full-width digits and letters (Ｘ, １２３) typed on Chinese
    # keyboards or exported from spreadsheets into their ASCII forms.
    return _SPACES.sub("", unicodedata.normalize("NFKC", raw or "")).upper()


def _birth_date(yyyymmdd, today):
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        raise RuleViolation("id_birth_date_invalid") from None
    if born > today:
        raise RuleViolation("id_birth_date_in_future")
    if born.year < 1880:
        raise RuleViolation("id_birth_date_invalid")
    return born


def _check_18(number, today):
    if not _RESIDENT_18.fullmatch(number):
        raise RuleViolation("id_format_invalid")
    born = _birth_date(number[6:14], today)
    if resident_check_char(number[:17]) != number[17]:
        raise RuleViolation("id_checksum_invalid")
    return born


def _resident(number, today):
    if _RESIDENT_15.fullmatch(number):
        # Legacy 15-digit card (before 1999): 2-digit year of the 1900s, no
        # check character. Convert to the 18-character form.
        first17 = number[:6] + "19" + number[6:]
        number = first17 + resident_check_char(first17)
    elif len(number) != 18:
        raise RuleViolation("id_length_invalid")
    born = _check_18(number, today)
    warnings = ()
    if int(number[:2]) not in PROVINCE_CODES:
        warnings = ("id_region_unknown",)
    return IdCheck("resident_id", number, born, warnings)


def _hmt_permit(number, today):
    if len(number) != 18:
        raise RuleViolation("id_length_invalid")
    if number[:6] not in HMT_PERMIT_PREFIXES:
        raise RuleViolation("id_permit_region_invalid")
    return IdCheck("hmt_residence_permit", number, _check_18(number, today))


def _passport(number, today):
    # Chinese passports: E/G + 8 digits (or E + letter + 7 digits); foreign
    # ones vary, so only a plausible alphanumeric shape is required.
    if not _PASSPORT.fullmatch(number):
        raise RuleViolation("id_format_invalid")
    return IdCheck("passport", number)


def _foreign_permanent(number, today):
    if _PERMANENT_2004.fullmatch(number):  # 2004 card: nationality + 12 digits
        return IdCheck("foreign_permanent_residence", number)
    if _PERMANENT_2023.fullmatch(number):  # 2023 card: the resident-ID layout
        return IdCheck("foreign_permanent_residence", number, _check_18(number, today))
    raise RuleViolation("id_format_invalid")


def _other(number, today):
    # Registry lookups only: no checksum, just something plausible.
    if not _OTHER_ID.fullmatch(number):
        raise RuleViolation("id_format_invalid")
    return IdCheck("other", number)


_CHECKERS = {
    "resident_id": _resident,
    "hmt_residence_permit": _hmt_permit,
    "passport": _passport,
    "foreign_permanent_residence": _foreign_permanent,
    "other": _other,
}


def normalise_id(id_type, raw, today):
    """Validate and normalise an ID number (spaces stripped, ``x`` -> ``X``,
    15 -> 18 digits). ``today`` is the Beijing date."""
    if id_type not in _CHECKERS:
        raise RuleViolation("id_type_invalid")
    number = _clean(raw)
    if not number:
        raise RuleViolation("id_number_required")
    return _CHECKERS[id_type](number, today)


def birth_date_of(id_check):
    return id_check.birth_date


def is_minor(birth_date, today, age=14):
    """Under ``age`` on ``today`` (the guardian rule uses 14)."""
    if birth_date is None:
        return False
    had_birthday = (today.month, today.day) >= (birth_date.month, birth_date.day)
    return today.year - birth_date.year - (0 if had_birthday else 1) < age


MIDDLE_DOT = "\u00b7"
# Look-alikes people type for the middle dot in minority names.
_DOT_VARIANTS = {
    "\u2022": MIDDLE_DOT,
    "\u30fb": MIDDLE_DOT,
    "\u2027": MIDDLE_DOT,
    "\uff0e": MIDDLE_DOT,
    "\u22c5": MIDDLE_DOT,
}
_traditional_to_simplified = None  # (converter, the characters it changes)


def _characters_changed_by(converter):
    """Every character some entry of the converter's dictionaries replaces
    (phrases and single characters). Text holding none of them converts to
    itself: no entry that matches it changes anything."""
    changed = set()
    for _, _, entries in converter.dict_cache.values():
        for key, value in entries.items():
            if value == key:
                continue
            if len(value) == len(key):
                changed.update(k for k, v in zip(key, value, strict=True) if k != v)
            else:  # a different length (or "干 乾", candidates): all of it
                changed.update(key)
    return frozenset(changed)


def to_simplified(text):
    """Traditional -> simplified Chinese (OpenCC t2s, loaded on first use).
    The converter is pure Python, ~14 µs a name (1.4 s over a roster of
    100k); most names a school sends are simplified already and hold no
    character it would change, so they skip it."""
    global _traditional_to_simplified
    if _traditional_to_simplified is None:
        from opencc import OpenCC  # loaded once, on first use

        converter = OpenCC("t2s")
        _traditional_to_simplified = (converter, _characters_changed_by(converter))
    converter, changed = _traditional_to_simplified
    if changed.isdisjoint(text):
        return text
    return converter.convert(text)


def check_name(raw):
    """A real name: 2+ characters, no spaces, ``·`` only between parts,
    letters of any script (CJK extension blocks included), simplified."""
    name = unicodedata.normalize("NFC", raw or "")
    name = "".join(_DOT_VARIANTS.get(ch, ch) for ch in name)
    if any(ch.isspace() for ch in name):
        raise RuleViolation("name_has_space")
    if len(name) < 2:
        raise RuleViolation("name_too_short")
    if len(name) > 40:
        raise RuleViolation("name_too_long")
    parts = name.split(MIDDLE_DOT)
    if any(part == "" for part in parts):
        raise RuleViolation("name_middle_dot_misplaced")
    for ch in name:
        if ch != MIDDLE_DOT and not ch.isalpha():
            raise RuleViolation("name_invalid_character")
    simplified = to_simplified(name)
    if simplified != name:
        raise RuleViolation("name_traditional", {"suggestion": simplified})
    return name


def comparable_name(raw):
    """A name reduced to what two records of the same person share: NFKC
    (full-width letters), no spaces, one middle dot, simplified characters,
    letters case-folded. Two names are the same person's when these are
    equal; the registry and the student may each have typed it either way."""
    name = unicodedata.normalize("NFKC", raw or "")
    name = "".join(_DOT_VARIANTS.get(ch, ch) for ch in name)
    # NFKC turns the full-width dot into ".", which a pinyin name may use too.
    name = name.replace(".", MIDDLE_DOT)
    name = "".join(ch for ch in name if not ch.isspace())
    return to_simplified(name).casefold()


def comparable_label(raw):
    """A class or grade label as two systems may write it: NFKC (full-width),
    no spaces, simplified, case-folded. ``七年级 1 班`` == ``七年級1班``.
    The registry matches records with it and recovery compares classes."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if not ch.isspace())
    return to_simplified(text).casefold() or None
