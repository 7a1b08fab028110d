"""Identity rules that are not about one document or one password (those are
``realname.py`` and ``passwords.py``): passport IDs, what a registration
becomes when its ID is taken, login names, throttles, the login decision,
the authentication-info lock rules, deactivation conditions and security
answers. Pure: no Nameko, no database; times are passed in.

The account and login flows are drawn in ``account_flows.mermaid``.
"""

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from services.common.contract.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    RuleViolation,
    Unauthenticated,
)
from services.common.contract.vocabulary import AUTH_INFO_FIELDS, ID_TYPES
from services.common.rules import realname
from services.common.rules.calendar import BEIJING
from services.common.rules.contacts import (
    PASSPORT_ALPHABET,
    canonical_login,
)
from services.common.rules.masking import (
    mask_device,
    mask_email,
    mask_id_number,
    mask_ip,
    mask_phone,
)
from services.common.rules.roles import SCHOOL_CODE_PATTERN
from services.common.rules.throttles import (  # noqa: F401 (re-exported)
    ThrottlePolicy,
    throttle_refusal,
)

__all__ = [
    "require_live",
    "NOTICE_KINDS",
    "notice_destinations",
    "notice_params",
    "PASSPORT_ALPHABET",
    "new_passport_id",
    "new_session_token",
    "registration_status",
    "classify_login",
    "id_number_candidates",
    "ThrottlePolicy",
    "LOGIN_PER_ACCOUNT",
    "LOGIN_PER_IP",
    "USERNAME_RECOVERY_PER_ID",
    "USERNAME_RECOVERY_PER_IP",
    "throttle_refusal",
    "LONGEST_THROTTLE_WINDOW",
    "login_decision",
    "code_destination",
    "require_unlimited",
    "check_auth_info",
    "changed_auth_fields",
    "check_guardian_allowed",
    "refuse_locked",
    "require_eligible",
    "LoginDecision",
    "check_school_code",
    "check_student_number",
    "check_department",
    "check_enrollment_year",
    "auth_info_permissions",
    "locked_fields",
    "registry_reset_needed",
    "deactivation_unmet",
    "normalise_answer",
    "check_security_questions",
    "masked_login_names",
    "AUTH_INFO_FIELDS",
]


def require_live(account):
    """The account a session or a flow names, unless it is gone or closed
    (then the caller's token no longer speaks for anyone)."""
    if account is None or account["status"] == "deactivated":
        raise Unauthenticated("invalid_token")
    return account


def new_passport_id():
    """Immutable and not guessable: 12 random symbols (~59 bits), ``P`` first."""
    return "P" + "".join(secrets.choice(PASSPORT_ALPHABET) for _ in range(12))


def new_session_token():
    """An opaque bearer token: 256 random bits; only its keyed hash is kept."""
    return secrets.token_urlsafe(32)


def registration_status(active_holder_of_id, register_anyway):
    """``active``, or ``duplicate_pending`` when the user insists although an
    active account already holds the ID number; otherwise refused, pointing
    to username recovery (the usual case: they forgot they registered)."""
    if active_holder_of_id is None:
        return "active"
    if register_anyway:
        return "duplicate_pending"
    raise Conflict("id_already_registered", {"see": "/api/v1/username-recovery"})


# -- login names ---------------------------------------------------------------


def classify_login(raw):
    """``(kind, value)``: ``phone`` (E.164), ``email``, ``passport``,
    ``id_number`` (canonical text, see ``id_number_candidates``) or
    ``unknown`` (shaped like an address or a number but not a valid one).
    The one spelling every service keys a login by
    (``services.common.rules.contacts.canonical_login``), so throttles name the
    account however its login was typed."""
    if not unicodedata.normalize("NFKC", raw or "").strip():
        raise InvalidRequest("invalid_request", {"errors": {"login": ["empty"]}})
    # A miss of the shapes is not a malformed request but an unknown login
    # name, which must look exactly like a wrong password (no enumeration).
    return canonical_login(raw)


def id_number_candidates(raw, today):
    """``[(id_type, normalised number)]`` the raw text could be, for lookup by
    keyed hash (the hash binds the type). Numbers that fail a type's rules
    simply are not candidates of that type."""
    candidates = []
    for id_type in ID_TYPES:
        try:
            checked = realname.normalise_id(id_type, raw, today)
        except RuleViolation:
            continue
        candidates.append((checked.id_type, checked.number))
    return candidates


# -- throttles -----------------------------------------------------------------


# Per account: 5 free, then 1 s, 2 s, 4 s … capped at 15 min. A stranger can
# slow an account down but not lock it: the cap is short, and logins from a
# device the account has proved skip this throttle (OWASP "device cookies").
LOGIN_PER_ACCOUNT = ThrottlePolicy(
    "login-account",
    free=5,
    base=timedelta(seconds=1),
    cap=timedelta(minutes=15),
    window=timedelta(hours=24),
    refusal="login_throttled",
)
# Per client IP: a school NAT has many students, so more free failures.
LOGIN_PER_IP = ThrottlePolicy(
    "login-ip",
    free=30,
    base=timedelta(seconds=1),
    cap=timedelta(minutes=15),
    window=timedelta(hours=1),
    refusal="login_throttled",
)
# "不能频繁使用该功能": the 5th failed lookup of one ID number in a day
# starts an hour's cooling period; per IP more are allowed (school NATs).
USERNAME_RECOVERY_PER_ID = ThrottlePolicy(
    "recovery-id",
    free=4,
    base=timedelta(hours=1),
    cap=timedelta(hours=1),
    window=timedelta(hours=24),
    refusal="too_frequent",
)
USERNAME_RECOVERY_PER_IP = ThrottlePolicy(
    "recovery-ip",
    free=30,
    base=timedelta(hours=1),
    cap=timedelta(hours=1),
    window=timedelta(hours=24),
    refusal="too_frequent",
)


LONGEST_THROTTLE_WINDOW = max(
    p.window
    for p in (
        LOGIN_PER_ACCOUNT,
        LOGIN_PER_IP,
        USERNAME_RECOVERY_PER_ID,
        USERNAME_RECOVERY_PER_IP,
    )
)


# -- the login decision --------------------------------------------------------


@dataclass(frozen=True)
class LoginDecision:
    """What a login with correct credentials leads to."""

    outcome: str  # "session" | "send_device_code" | "check_device_code"
    code_destination: str | None = None


def code_destination(account):
    """Where an account's own codes go: the bound phone, or the guardian's
    for K-12 accounts without one. No phone at all: forgot-phone recovery
    (two classmates vouch)."""
    destination = account.get("phone") or account.get("guardian_phone")
    if destination is None:
        raise RuleViolation("no_bound_phone", {"see": "/api/v1/phone-recoveries"})
    return destination


def require_unlimited(account):
    """A ``duplicate_pending`` account may log in and look, but not change
    its authentication info or link identities until recovery settles it."""
    if account["status"] == "duplicate_pending":
        raise Forbidden("account_limited")


def login_decision(account, device_known, code_given):
    """Credentials were right. A device the account has proved gets a
    session; an unseen one needs a ``login_new_device`` code sent to
    ``code_destination``."""
    if device_known:
        return LoginDecision("session")
    destination = code_destination(account)
    if code_given:
        return LoginDecision("check_device_code", destination)
    return LoginDecision("send_device_code", destination)


# -- school data ----------------------------------------------------------------


def check_school_code(raw):
    """The school code rule of ``services.common.rules.roles``; a 422 here (a
    rule of the auth-info change), where ops' grants answer 400."""
    value = (raw or "").strip().upper()
    if not re.fullmatch(SCHOOL_CODE_PATTERN, value):
        raise RuleViolation("school_code_invalid")
    return value


def check_student_number(raw):
    value = (raw or "").strip().upper()
    if not re.fullmatch(r"[0-9A-Z][0-9A-Z_-]{0,31}", value):
        raise RuleViolation("student_number_invalid")
    return value


def check_department(raw):
    value = unicodedata.normalize("NFC", (raw or "").strip())
    if not 1 <= len(value) <= 64 or any(not ch.isprintable() for ch in value):
        raise RuleViolation("department_invalid")
    return value


def check_enrollment_year(year, today):
    if not isinstance(year, int) or not 1950 <= year <= today.year + 1:
        raise RuleViolation("enrollment_year_invalid")
    return year


def check_auth_info(requested, today):
    """The fields given (not None) of ``requested``, each checked by its rule."""
    checks = {
        "school_code": check_school_code,
        "student_number": check_student_number,
        "name": realname.check_name,
        "department": check_department,
        "enrollment_year": lambda year: check_enrollment_year(year, today),
    }
    return {
        field: check(requested[field])
        for field, check in checks.items()
        if requested.get(field) is not None
    }


def changed_auth_fields(account, wanted):
    """The fields whose wanted value differs from the account's; refused
    when there are none."""
    changed = sorted(f for f, value in wanted.items() if value != account[f])
    if not changed:
        raise RuleViolation("nothing_to_change")
    return changed


def check_guardian_allowed(birth_date, today):
    """A guardian phone is for children under 14; an account without a
    birth date (K-12, registered by student number) may set one too."""
    if birth_date is not None and not realname.is_minor(birth_date, today):
        raise RuleViolation("guardian_not_needed")


# -- authentication-info lock rules (seed 000 §一.4) ---------------------------

_RULE1_FIELDS = ("school_code", "name", "student_number")


def _is_open(enrollment):
    return not enrollment["dropped"] and not enrollment["exam_ended"]


def auth_info_permissions(enrollments, windows, now):
    """Per field ``{changeable, reason, unlocks_at}``.

    1. A school-arranged credit course whose exam has not ended locks school,
       name and student number — unless a change window covering now opens
       that field. It unlocks at the earliest of: the last such exam's end
       (when every one is known) and the next window opening the field.
    2. An unfinished free elective locks the school (windows are the school's
       tool for rule 1 only); it unlocks when the last one's exam ends.
    3. Otherwise every field may change.
    """
    arranged = [
        e for e in enrollments if e["kind"] == "school_arranged" and _is_open(e)
    ]
    electives = [e for e in enrollments if e["kind"] == "free_elective" and _is_open(e)]
    live_windows = [w for w in windows if not w["cancelled"]]

    def last_exam_end(courses):
        ends = [c.get("exam_ends_at") for c in courses]
        if not ends or any(end is None for end in ends):
            return None
        return max(ends)

    answer = {}
    for field in AUTH_INFO_FIELDS:
        reasons, unlocks = [], []
        if field in _RULE1_FIELDS and arranged:
            open_now = any(
                field in w["fields"] and w["starts_at"] <= now < w["ends_at"]
                for w in live_windows
            )
            if not open_now:
                reasons.append("school_arranged_course")
                upcoming = [
                    w["starts_at"]
                    for w in live_windows
                    if field in w["fields"] and w["starts_at"] > now
                ]
                candidates = [
                    t
                    for t in (last_exam_end(arranged), min(upcoming, default=None))
                    if t
                ]
                unlocks.append(min(candidates) if candidates else None)
        if field == "school_code" and electives:
            reasons.append("free_elective_unfinished")
            unlocks.append(last_exam_end(electives))
        if not reasons:
            answer[field] = {"changeable": True, "reason": None, "unlocks_at": None}
            continue
        # Every lock must lift: the field unlocks at the latest of them, and
        # is unknown if any is.
        unlocks_at = None if any(u is None for u in unlocks) else max(unlocks)
        answer[field] = {
            "changeable": False,
            "reason": reasons[0],
            "reasons": reasons,
            "unlocks_at": unlocks_at,
        }
    return answer


def locked_fields(permissions, requested):
    """The requested fields that may not change, with why and until when."""
    return [
        {
            "field": field,
            "reason": permissions[field]["reason"],
            "unlocks_at": permissions[field]["unlocks_at"],
        }
        for field in requested
        if not permissions[field]["changeable"]
    ]


def refuse_locked(permissions, requested):
    """``field_locked`` with ``locked_fields`` if any requested field is locked."""
    locked = locked_fields(permissions, requested)
    if locked:
        raise RuleViolation("field_locked", {"locked_fields": locked})


def registry_reset_needed(changed_fields):
    """A change of school, name or student number sends registry
    verification back to pending."""
    return bool(set(changed_fields) & set(_RULE1_FIELDS))


# -- deactivation (seed 000 §三.2) ------------------------------------------------


def require_eligible(unmet):
    """``not_eligible`` listing every unmet condition, if there is one."""
    if unmet:
        raise RuleViolation("not_eligible", {"unmet": unmet})


def deactivation_unmet(balance_fen, enrollments, owned_courses):
    """Every unmet condition as ``{condition, detail}``; empty when eligible."""
    unmet = []
    if balance_fen > 0:
        unmet.append(
            {"condition": "wallet_balance", "detail": {"balance_fen": balance_fen}}
        )
    current = [e for e in enrollments if not e["dropped"]]
    for condition, test in (
        ("credit_course_unfinished", lambda e: not e["exam_ended"]),
        ("grades_unpublished", lambda e: e["exam_ended"] and not e["grades_published"]),
        ("makeup_exam_pending", lambda e: e["makeup_pending"]),
    ):
        courses = sorted(e["course_id"] for e in current if test(e))
        if courses:
            unmet.append({"condition": condition, "detail": {"courses": courses}})
    by_kind = {}
    for course in owned_courses:
        by_kind.setdefault(course["kind"], []).append(course["course_id"])
    if by_kind:
        unmet.append(
            {
                "condition": "courses_owned",
                "detail": {kind: sorted(ids) for kind, ids in sorted(by_kind.items())},
            }
        )
    return unmet


# -- security questions ---------------------------------------------------------


def normalise_answer(raw, to_simplified=realname.to_simplified):
    """Case, width, spaces, punctuation and traditional/simplified script do
    not matter: ``" 北京 市！"`` and ``"北京市"`` are one answer."""
    # NFKC again after casefold: folding can leave decomposed sequences.
    text = unicodedata.normalize("NFKC", raw or "").casefold()
    text = unicodedata.normalize("NFKC", text)
    text = "".join(
        ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] != "P"
    )
    return unicodedata.normalize("NFKC", to_simplified(text))


def check_security_questions(questions):
    """Three different questions with answers of 2+ characters, normalised:
    ``[(question, normalised answer)]``."""
    if len(questions) != 3:
        raise RuleViolation("questions_invalid")
    cleaned = []
    for item in questions:
        question = unicodedata.normalize("NFKC", item["question"]).strip()
        answer = normalise_answer(item["answer"])
        if len(answer) < 2:
            raise RuleViolation("answer_too_short")
        cleaned.append((question, answer))
    if len({q for q, _ in cleaned}) != 3 or not all(q for q, _ in cleaned):
        raise RuleViolation("questions_invalid")
    return cleaned


# -- username recovery ------------------------------------------------------------


def masked_login_names(account, id_number):
    """The login names of a matched account, masked; the passport ID whole
    (it is an identifier the user needs to type, not personal data)."""
    names = [{"kind": "passport_id", "value": account["passport_id"]}]
    if account.get("phone"):
        names.append({"kind": "phone", "value": mask_phone(account["phone"])})
    if account.get("email"):
        names.append({"kind": "email", "value": mask_email(account["email"])})
    if id_number:
        names.append({"kind": "id_number", "value": mask_id_number(id_number)})
    return names


# -- credential-change notices -------------------------------------------------
# Which channels hear of a change: every one the account had bound *before*
# it, so whoever made the change cannot silence the old phone or address.
NOTICE_KINDS = (
    "phone_changed",
    "email_changed",
    "new_device_login",
    "security_questions_set",
    "account_deactivated",
    "phone_taken_over",
    # recovery (services/identity/recovery_entrypoints.py)
    "password_reset",
    "phone_recovered",
    "phone_recovered_elsewhere",
    "recovery_reverted",
    "id_binding_moved",
    "id_binding_move_scheduled",
)


def notice_destinations(kind, account):
    """``[(channel, destination)]`` for a notice of ``kind`` about ``account``
    as it was before the change."""
    if kind not in NOTICE_KINDS:
        raise ValueError(f"unknown notice kind {kind}")
    destinations = []
    # The account that lost its phone to a new holder no longer has it.
    if account.get("phone") and kind != "phone_taken_over":
        destinations.append(("sms", account["phone"]))
    if account.get("email"):
        destinations.append(("email", account["email"]))
    return destinations


def notice_params(now, device_id=None, client_ip=None, **masked):
    """What a notice says besides its kind: when (Beijing time), from which
    device and network where known, and masked values; never a code, never
    a full number."""
    params = {"changed_at": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")}
    if device_id:
        params["device"] = mask_device(device_id)
    area = mask_ip(client_ip) if client_ip else None
    if area:
        params["area"] = area
    params.update({key: str(value) for key, value in masked.items()})
    return params
