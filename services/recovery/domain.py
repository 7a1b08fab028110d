"""Recovery rules as plain Python: the forgot-phone state machine (drawn in
``phone_recovery.mermaid`` beside this file), share and "not me" links,
who may vouch, decoy answers for unknown accounts, throttles and caps.

Everything here is pure: time, keys and facts fetched from other services
are passed in, so every rule is unit-tested without a broker.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from services.common.contract.errors import Conflict, Forbidden, NotFound, Throttled
from services.common.rules.calendar import BEIJING, beijing_day, next_beijing_midnight
from services.common.rules.masking import mask_email, mask_phone
from services.common.rules.realname import comparable_label
from services.common.rules.throttles import (  # noqa: F401 (re-exported)
    ThrottlePolicy,
    throttle_refusal,
)

__all__ = [
    "RecoveryPolicy",
    "policy_from",
    "OPEN_STATES",
    "STEPS",
    "effective_status",
    "require_step",
    "after_vouch",
    "new_secret_token",
    "sign_link",
    "open_link",
    "voucher_refusal",
    "term_period",
    "decoy_hint",
    "decoy_methods",
    "real_methods",
    "ThrottlePolicy",
    "throttle_refusal",
    "review_service_level",
    "HelperFacts",
    "helper_refusal",
    "move_ready",
]

# -- the forgot-phone state machine --------------------------------------------
MATCHED = "matched"
AWAITING_VOUCHES = "awaiting_vouches"
COMPLETED = "completed"
CANCELLED = "cancelled"
EXPIRED = "expired"
FAILED = "failed"
REVERTED = "reverted"
OPEN_STATES = (MATCHED, AWAITING_VOUCHES)

# step -> the states it may start from. A step called from any other state
# is refused with ``recovery_step_invalid`` naming the state: calling the API
# out of order cannot skip a step, and a replayed step finds its state gone.
STEPS = {
    "set_new_phone": (MATCHED,),
    "vouch": (AWAITING_VOUCHES,),
    "cancel": (MATCHED, AWAITING_VOUCHES),
    "not_me": (COMPLETED,),
}


@dataclass(frozen=True)
class RecoveryPolicy:
    """Every setting of the recovery service, read once from its config
    (``policy_from``); the defaults are the product's rules."""

    vouches_needed: int = 2
    flow_ttl: timedelta = timedelta(hours=72)
    cancel_window: timedelta = timedelta(days=7)
    old_phone_attempts: int = 5
    # A voucher account created or verified less than this long ago does not
    # count (a ring of fresh accounts cannot vouch for each other).
    voucher_min_age: timedelta = timedelta(days=7)
    vouch_daily_cap: int = 3
    vouch_term_cap: int = 5
    assistance_daily_cap: int = 5
    # How long the account holding an ID number may say "not me" before the
    # number moves to the account classmates vouched for.
    dispute_window: timedelta = timedelta(days=7)
    # Every answer of the first recovery steps takes at least this long, so
    # its timing does not tell whether the student exists.
    answer_floor_seconds: float = 0.12
    # Where share and "not me" links point (the gateway's public address).
    public_base_url: str = ""
    match_per_ip: ThrottlePolicy = None
    match_per_target: ThrottlePolicy = None
    vouch_attempts: ThrottlePolicy = None
    security_questions_enabled: bool = True
    # Between two reset codes for one login: the first attempt blocks.
    reset_cooldown: ThrottlePolicy = None
    photo_max_bytes: int = 5 * 1024 * 1024
    photo_max_pixels: int = 24_000_000
    photo_retention: timedelta = timedelta(days=30)

    def __post_init__(self):
        for name, default in (
            ("match_per_ip", MATCH_PER_IP),
            ("match_per_target", MATCH_PER_TARGET),
            ("vouch_attempts", VOUCH_ATTEMPTS),
            ("reset_cooldown", RESET_COOLDOWN),
        ):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)

    def url(self, path):
        """A link the platform sends (share, "not me")."""
        return self.public_base_url.rstrip("/") + path


def _truthy(value):
    return str(value).lower() in ("1", "true", "yes")


def policy_from(config):
    """The ``RecoveryPolicy`` a service's config mapping describes (keys
    absent: the product's defaults)."""
    c = config
    return RecoveryPolicy(
        vouches_needed=int(c.get("RECOVERY_VOUCHES_NEEDED", 2)),
        flow_ttl=timedelta(hours=float(c.get("RECOVERY_FLOW_HOURS", 72))),
        cancel_window=timedelta(days=float(c.get("RECOVERY_CANCEL_DAYS", 7))),
        voucher_min_age=timedelta(days=float(c.get("VOUCHER_MIN_AGE_DAYS", 7))),
        vouch_daily_cap=int(c.get("VOUCH_DAILY_CAP", 3)),
        vouch_term_cap=int(c.get("VOUCH_TERM_CAP", 5)),
        assistance_daily_cap=int(c.get("ASSISTANCE_DAILY_CAP", 5)),
        dispute_window=timedelta(days=float(c.get("DUPLICATE_DISPUTE_DAYS", 7))),
        answer_floor_seconds=float(c.get("ANSWER_FLOOR_MS", 120)) / 1000,
        public_base_url=c.get("PUBLIC_BASE_URL", "") or "",
        match_per_ip=MATCH_PER_IP.with_limit(
            c.get("MATCH_IP_LIMIT", MATCH_PER_IP.free)
        ),
        match_per_target=MATCH_PER_TARGET.with_limit(
            c.get("MATCH_TARGET_LIMIT", MATCH_PER_TARGET.free)
        ),
        vouch_attempts=VOUCH_ATTEMPTS.with_limit(
            c.get("VOUCH_ATTEMPTS_LIMIT", VOUCH_ATTEMPTS.free)
        ),
        security_questions_enabled=_truthy(c.get("SECURITY_QUESTIONS_ENABLED", "true")),
        reset_cooldown=replace(
            RESET_COOLDOWN,
            window=timedelta(seconds=float(c.get("RESET_CODE_COOLDOWN_SECONDS", 60))),
        ),
        photo_max_bytes=int(c.get("PHOTO_MAX_BYTES", 5 * 1024 * 1024)),
        photo_max_pixels=int(c.get("PHOTO_MAX_PIXELS", 24_000_000)),
        photo_retention=timedelta(days=float(c.get("PHOTO_RETENTION_DAYS", 30))),
    )


def effective_status(status, expires_at, now):
    """An open flow past its deadline is expired, whether or not the timer
    has written it yet."""
    if status in OPEN_STATES and now >= expires_at:
        return EXPIRED
    return status


def require_step(step, status, expires_at, now, cancel_until=None):
    """Raise unless ``step`` may run on a flow in ``status`` now."""
    current = effective_status(status, expires_at, now)
    if current == EXPIRED and step != "not_me":
        raise Conflict("recovery_expired", {"status": EXPIRED})
    if current not in STEPS[step]:
        raise Conflict("recovery_step_invalid", {"status": current})
    if step == "not_me" and (cancel_until is None or now >= cancel_until):
        raise Conflict("cancel_window_over", {"status": current})
    return current


def after_vouch(vouches, policy):
    """The state a flow is in once it holds ``vouches`` vouches."""
    return COMPLETED if vouches >= policy.vouches_needed else AWAITING_VOUCHES


# -- tokens ----------------------------------------------------------------------
def new_secret_token():
    """A bearer secret (256 bits); only its keyed hash is stored."""
    return secrets.token_urlsafe(32)


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_LINK_SIG_BYTES = 16


def sign_link(key, purpose, flow_id, expires_at):
    """A signed link token: ``flow id + nonce + expiry + HMAC``. Bound to one
    flow and one purpose (a share link is not a "not me" link), expiring; the
    nonce makes each issued link distinct, so the flow can also keep the
    keyed hash of the one it issued and refuse any other."""
    body = (
        uuid.UUID(str(flow_id)).bytes
        + secrets.token_bytes(12)
        + int(expires_at.timestamp()).to_bytes(8, "big")
    )
    sig = hmac.new(key, purpose.encode() + b"\x1f" + body, hashlib.sha256).digest()
    return _b64(body + sig[:_LINK_SIG_BYTES])


def open_link(key, purpose, token, now):
    """``(flow_id, expires_at)`` of a link this service signed for
    ``purpose``; ``share_link_invalid`` for anything tampered or foreign,
    ``share_link_expired`` past its expiry."""
    try:
        raw = _unb64(token)
    except (ValueError, TypeError):
        raise NotFound("share_link_invalid") from None
    # One spelling per token: a variant in the unused low bits of the last
    # character decodes the same and is refused all the same.
    if len(raw) != 16 + 12 + 8 + _LINK_SIG_BYTES or _b64(raw) != token:
        raise NotFound("share_link_invalid")
    body, sig = raw[:-_LINK_SIG_BYTES], raw[-_LINK_SIG_BYTES:]
    expected = hmac.new(key, purpose.encode() + b"\x1f" + body, hashlib.sha256)
    if not hmac.compare_digest(expected.digest()[:_LINK_SIG_BYTES], sig):
        raise NotFound("share_link_invalid")
    flow_id = uuid.UUID(bytes=body[:16])
    expires_at = datetime.fromtimestamp(
        int.from_bytes(body[28:36], "big"), timezone.utc
    )
    if now >= expires_at:
        raise Conflict("share_link_expired", {"expired_at": expires_at.isoformat()})
    return flow_id, expires_at


# -- who may vouch ---------------------------------------------------------------
@dataclass(frozen=True)
class VoucherFacts:
    """What the vouch decision needs, gathered from identity and
    registry_sync by the service."""

    requester_id: str
    voucher_id: str
    voucher_status: str  # identity's account status
    voucher_created_at: datetime
    classmates: dict  # registry_sync.classmates(requester, voucher)
    already_vouched: bool


def voucher_refusal(facts, now, policy):
    """None if the voucher may vouch, else the reason (the answer is 403
    ``not_eligible_voucher`` with this ``reason``). Caps are counted by the
    store afterwards, in the same transaction."""
    if facts.voucher_id == facts.requester_id:
        return "self"
    if facts.already_vouched:
        return "already_vouched"
    if facts.voucher_status != "active":
        return "voucher_limited"
    mates = facts.classmates
    if not mates.get("account_verified"):
        return "requester_not_verified"
    if not mates.get("other_verified"):
        return "voucher_not_verified"
    if not mates.get("same_school"):
        return "other_school"
    if mates.get("same_class") is False:
        return "other_class"
    return _too_new(facts.voucher_created_at, mates.get("verified_since"), now, policy)


def _too_new(created_at, verified_since, now, policy):
    """A vouching or assisting account made or verified within
    ``voucher_min_age`` does not count (a ring of fresh accounts cannot
    vouch for each other)."""
    if now - created_at < policy.voucher_min_age:
        return "recently_created"
    if verified_since is None or now - verified_since < policy.voucher_min_age:
        return "recently_verified"
    return None


def term_period(now, school_term=None):
    """The term a per-term cap counts in: the school's current term where the
    registry knows it, else the Beijing half-year (spring: Feb–Jul, autumn:
    Aug–Jan, named by the year it starts in)."""
    if school_term:
        return f"term:{school_term}"
    day = beijing_day(now)
    if 2 <= day.month <= 7:
        return f"{day.year}-spring"
    return f"{day.year if day.month >= 8 else day.year - 1}-autumn"


# -- answers that do not tell who exists -----------------------------------------
_PREFIXES = ("130", "131", "133", "135", "136", "137", "138", "139", "150", "151",
             "152", "155", "157", "158", "159", "166", "177", "180", "181", "182",
             "185", "186", "187", "188", "189", "191", "198", "199")  # fmt: skip
_MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "foxmail.com", "sina.com", "139.com")
_DECOY_QUESTIONS = (
    "我的小学班主任姓什么？",
    "我母亲的生日是？",
    "我最喜欢的科目是？",
    "我的出生地是？",
    "我高中的学号后四位是？",
    "我第一只宠物的名字是？",
)


def _decoy_phone(digest):
    prefix = _PREFIXES[digest[0] % len(_PREFIXES)]
    tail = int.from_bytes(digest[1:5], "big") % 100_000_000
    return f"{prefix}{tail:08d}"


def decoy_hint(digest):
    """The old-phone hint of a flow that matched nobody: a phone mask derived
    from a keyed hash of what was typed, so asking again gives the same."""
    return old_phone_hint(_decoy_phone(digest))


def old_phone_hint(phone):
    """``13812345678`` -> ``138****78``: enough for its owner to recognise,
    too little to be the answer the next step asks for."""
    digits = phone[-11:]
    return digits[:3] + "****" + digits[-2:]


def real_methods(targets, questions_enabled):
    """The reset methods an account set up, with masked targets."""
    methods = []
    if targets.get("phone"):
        methods.append({"method": "sms", "target": mask_phone(targets["phone"])})
    if targets.get("email"):
        methods.append({"method": "email", "target": mask_email(targets["email"])})
    if questions_enabled and targets.get("questions"):
        methods.append({"method": "questions", "questions": list(targets["questions"])})
    return methods


def decoy_methods(digest, login_kind, login_value, questions_enabled):
    """What ``real_methods`` would answer for a plausible account, derived
    from a keyed hash of the login: repeated asks agree, and a login that is
    itself a phone or address shows that login's own mask."""
    targets = {}
    if login_kind == "phone":
        targets["phone"] = login_value
    elif digest[5] % 10:  # nine accounts in ten have a phone bound
        targets["phone"] = _decoy_phone(digest[6:])
    if login_kind == "email":
        targets["email"] = login_value
    elif digest[11] % 3 == 0:
        local = "abcdefghijklmnopqrstuvwxyz"[digest[12] % 26]
        targets["email"] = f"{local}x@{_MAIL_DOMAINS[digest[13] % len(_MAIL_DOMAINS)]}"
    if digest[14] % 4 == 0:
        start = digest[15] % len(_DECOY_QUESTIONS)
        targets["questions"] = [
            _DECOY_QUESTIONS[(start + i) % len(_DECOY_QUESTIONS)] for i in range(3)
        ]
    return real_methods(targets, questions_enabled)


# -- throttles --------------------------------------------------------------------
# Identity match: per client IP (a school NAT has many students) and per
# target (school + student number), every attempt counted, match or not.
MATCH_PER_IP = ThrottlePolicy("match-ip", 30, timedelta(hours=1))
MATCH_PER_TARGET = ThrottlePolicy("match-target", 5, timedelta(hours=24))
# Reset codes per login (known or not: the same limit answers both).
RESET_CODES_PER_LOGIN = ThrottlePolicy("reset-code", 5, timedelta(hours=24))
# Reset attempts with a wrong code per login: the 10th locks resets for a day.
RESET_FAILURES_PER_LOGIN = ThrottlePolicy("reset-fail", 9, timedelta(hours=24))
# Security questions: 2 wrong sets are free, the 3rd locks the method for a day.
QUESTION_FAILURES = ThrottlePolicy(
    "questions", 2, timedelta(hours=24), refusal="method_locked"
)
# Between two reset codes for one login (RESET_CODE_COOLDOWN_SECONDS).
RESET_COOLDOWN = ThrottlePolicy(
    "reset-cooldown", 0, timedelta(seconds=60), refusal="resend_too_soon"
)
# The vouch page: an account trying many links in a short time.
VOUCH_ATTEMPTS = ThrottlePolicy("vouch-try", 20, timedelta(hours=1))


def daily_cap_refusal(code, now, cap):
    """A 429 for a per-day cap, saying when it resets (Beijing midnight)."""
    resets = next_beijing_midnight(now)
    return Throttled(
        code,
        {
            "limit": cap,
            "resets_at": resets.isoformat(),
            "retry_after": max(1, int((resets - now).total_seconds())),
        },
    )


def require_not_limited(status):
    if status != "duplicate_pending":
        raise Conflict("not_duplicate_pending", {"status": status})


# -- duplicate ID: who may assist ------------------------------------------------------
def classmate_may_assist(requester, classmate):
    """A classmate named for duplicate-ID assistance must be someone else's
    live, registry-verified account of the requester's school. One answer
    for every failure (the requester learns nothing about who is who). The
    voucher's guards apply again when the classmate answers."""
    return bool(
        classmate.get("found")
        and classmate["account_id"] != requester["account_id"]
        and classmate["status"] == "active"
        and classmate["registry_status"] == "passed"
        and requester.get("school_code")
        and classmate["school_code"] == requester["school_code"]
    )


@dataclass(frozen=True)
class HelperFacts:
    """What the assistance decision needs: the requester as identity knows
    it (a duplicate_pending account may hold no passed verification — its
    record can be tied to the very account that holds its ID number), the
    helper as identity and registry_sync know it."""

    requester_id: str
    requester_school: str | None
    requester_class: str | None
    helper_id: str
    helper_status: str
    helper_created_at: datetime
    helper_verified: bool
    helper_school: str | None
    helper_class: str | None
    helper_verified_since: datetime | None
    already_helped: bool


def helper_refusal(facts, now, policy):
    """None if the helper's yes counts, else the reason — the same guards a
    voucher passes (issue #20 §2): not the requester, once per requester, a
    live account, verified at the requester's school (same class where both
    are known), neither created nor verified recently. Caps are counted by
    the store afterwards."""
    if facts.helper_id == facts.requester_id:
        return "self"
    if facts.already_helped:
        return "already_vouched"
    if facts.helper_status != "active":
        return "voucher_limited"
    if not facts.helper_verified:
        return "voucher_not_verified"
    if not facts.requester_school or facts.helper_school != facts.requester_school:
        return "other_school"
    if (
        facts.requester_class
        and facts.helper_class
        and comparable_label(facts.requester_class)
        != comparable_label(facts.helper_class)
    ):
        return "other_class"
    return _too_new(facts.helper_created_at, facts.helper_verified_since, now, policy)


# -- duplicate ID: the move of the ID number ------------------------------------------
#
#   a reviewer approves the photo ─────────────────────────────────────► applied
#   N classmates said yes ─► no other account holds the number ────────► applied
#                         └► holding ──(dispute window ends undisputed)─► applied
#                               │
#                               └─ holder's "not me" ─► disputed ─┬─ reviewer upholds
#                                                                 │  the claim ─► applied
#                                                                 └─ reviewer upholds
#                                                                    the holder ─► cancelled
#   (a photo approved while holding or after a cancel also applies at once)
#
# ``applied`` is the only state that moves the number (the outbox event
# ``duplicate_resolved``, applied by identity once per resolution id).
HOLDING = "holding"
APPLIED = "applied"
DISPUTED = "disputed"
MOVE_CANCELLED = "cancelled"


def move_ready(helpers, policy):
    """Enough classmates said yes: as many as a phone recovery needs vouches."""
    return helpers >= policy.vouches_needed


# -- reviews ------------------------------------------------------------------------
def review_service_level(created_at):
    """What the student is promised: an answer within two working days
    (Mon–Fri, Beijing), as a date to show beside the request."""
    day = created_at.astimezone(BEIJING).date()
    added = 0
    while added < 2:
        day += timedelta(days=1)
        if day.weekday() < 5:
            added += 1
    return {
        "promise_zh": "2个工作日内答复",
        "promise_en": "answered within 2 working days",
        "answer_by": day.isoformat(),
    }


def require_voucher_allowed(reason):
    if reason is not None:
        raise Forbidden("not_eligible_voucher", {"reason": reason})
