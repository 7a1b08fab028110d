"""Verification-code rules as plain Python: destinations, policies and
profiles, the Beijing calendar day, code generation and hashing, message
templates, and the guess-counting decision. No I/O here.

The lifecycle of one code (states live in the ``codes`` table columns)::

    issued ──deliver ok──▶ delivered ──check ok──▶ used
      │                       │
      │ delivery failed       ├──expires_at passed──▶ expired
      ▼                       │
    dead ◀──5 wrong guesses───┘   (per destination + purpose, across codes)

See ``code_lifecycle.mermaid`` beside this file.
"""

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.common.contract.errors import InvalidRequest, RuleViolation, Throttled
from services.common.contract.vocabulary import CODE_CHANNELS, CODE_PURPOSES
from services.common.rules.calendar import (
    BEIJING,
    beijing_day,
    beijing_day_start,
    next_beijing_midnight,
)
from services.common.rules.contacts import channel_of, normalise_email, normalise_mobile

__all__ = [
    "PURPOSES",
    "OPEN_PURPOSES",
    "quota_budget",
    "CHANNELS",
    "BEIJING",
    "Policy",
    "PROFILES",
    "policy_for",
    "normalise_destination",
    "checked_destination",
    "beijing_day",
    "beijing_day_start",
    "next_beijing_midnight",
    "generate_code",
    "code_hash",
    "codes_match",
    "phone_prefix",
    "render_message",
    "render_notice",
    "GuessOutcome",
    "after_wrong_guess",
    "window_start",
    "lock_refusal",
    "destination_refusal",
    "seconds_until",
    "judge_code",
    "generate_captcha_text",
    "captcha_hash",
    "CAPTCHA_ALPHABET",
]

PURPOSES = CODE_PURPOSES
# Codes anyone can ask for a number or address (it may belong to no account
# yet): they take from a budget of their own, so a stranger cannot spend the
# codes an account holder needs for their own account (issue #20 §7).
OPEN_PURPOSES = ("register", "guardian_check", "recover_phone")


def quota_budget(purpose):
    """Which daily budget of a destination a code of ``purpose`` takes from:
    ``open`` (anyone can trigger it) or ``account`` (the holder's own)."""
    return "open" if purpose in OPEN_PURPOSES else "account"


CHANNELS = CODE_CHANNELS


@dataclass(frozen=True)
class Policy:
    """Limits for issuing and checking codes. All counts are per window."""

    name: str
    validity: timedelta
    daily_limit_per_destination: int = 5  # Zhihuishu: 5 a day
    resend_cooldown: timedelta = timedelta(seconds=60)
    hourly_limit_per_ip: int = 30
    daily_limit_per_account: int = 20
    max_wrong_guesses: int = 5
    lockouts_before_lock: int = 3  # rounds of 5 wrong within a day
    lock_duration: timedelta = timedelta(hours=1)
    ip_failures_before_captcha: int = 5  # refusals from one IP per hour
    prefix_sends_per_minute: int = 600  # SMS-pumping breaker
    breaker_open_for: timedelta = timedelta(minutes=5)


PROFILES = {
    # Zhihuishu's help pages: valid 30 minutes.
    "default": Policy("default", validity=timedelta(minutes=30)),
    # CHSI: valid 24 hours.
    "chsi": Policy("chsi", validity=timedelta(hours=24)),
    # OWASP ASVS 5.0 (6.5.5) and NIST SP 800-63B-4: out-of-band codes by SMS
    # live at most 10 minutes.
    "strict": Policy("strict", validity=timedelta(minutes=10)),
}


def policy_for(profile, overrides=None):
    """The named profile with numeric overrides applied (from config)."""
    try:
        base = PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown verification profile {profile!r}") from None
    changes = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        current = getattr(base, key)
        changes[key] = (
            timedelta(seconds=float(value))
            if isinstance(current, timedelta)
            else type(current)(value)
        )
    return replace(base, **changes)


def normalise_destination(channel, destination):
    """A mainland mobile in E.164 (``+8613812345678``) or a lower-cased email."""
    if channel == "sms":
        return normalise_mobile(destination)
    if channel == "email":
        return normalise_email(destination)
    raise InvalidRequest("channel_invalid")


def checked_destination(channel, destination):
    """``destination`` normalised for ``channel``, or the refusal every
    caller gets for the same mistake: well-formed for the other channel (an
    address asked to take an SMS) is 422 ``destination_channel_mismatch``;
    malformed for its channel is 400 ``phone_invalid`` / ``email_invalid``."""
    try:
        return normalise_destination(channel, destination)
    except InvalidRequest as refusal:
        other = "email" if channel == "sms" else "sms"
        if channel in CHANNELS and channel_of(destination) == other:
            try:
                normalise_destination(other, destination)
            except InvalidRequest:
                pass
            else:
                raise RuleViolation("destination_channel_mismatch") from None
        raise InvalidRequest(
            refusal.code, {"errors": {"destination": [refusal.code]}}
        ) from None


def generate_code():
    """Six digits from the OS's cryptographic RNG."""
    return f"{secrets.randbelow(1_000_000):06d}"


def code_hash(key, destination, purpose, code):
    """Keyed hash bound to destination and purpose: a leaked table reveals
    nothing, and a code verifies only where and for what it was sent."""
    message = f"{destination}\x1f{purpose}\x1f{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def codes_match(stored_hash, candidate_hash):
    return hmac.compare_digest(stored_hash, candidate_hash)


def phone_prefix(destination):
    """The breaker's unit: country code + the 3-digit mobile network prefix."""
    if destination.startswith("+86"):
        return destination[:6]
    return "email:" + destination.rpartition("@")[2]


_PURPOSE_TEXT = {
    "register": ("注册账号", "registering an account"),
    "login_new_device": ("在新设备上登录", "signing in on a new device"),
    "reset_password": ("重置密码", "resetting your password"),
    "change_phone": ("更换绑定手机号", "changing your phone number"),
    "change_email": ("更换绑定邮箱", "changing your email address"),
    "recover_phone": ("找回账号（忘记手机号）", "recovering your account"),
    "change_auth_info": ("修改认证信息", "changing your authentication info"),
    "deactivate": ("注销账号", "closing your account"),
    "guardian_check": ("监护人确认", "guardian confirmation"),
}


def _validity_text(validity):
    minutes = int(validity.total_seconds() // 60)
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours}小时", f"{hours} hour{'s' if hours > 1 else ''}"
    return f"{minutes}分钟", f"{minutes} minutes"


def render_message(channel, purpose, code, validity):
    """Chinese first, then English. Returns ``(subject, body)``; SMS has no subject."""
    zh_purpose, en_purpose = _PURPOSE_TEXT[purpose]
    zh_valid, en_valid = _validity_text(validity)
    body = (
        f"【学生账号自助服务】您正在{zh_purpose}，验证码：{code}，{zh_valid}内有效。"
        f"请勿将验证码告诉他人。"
        f"\nYour code for {en_purpose} is {code}, valid for {en_valid}. "
        f"Do not share it."
    )
    subject = None
    if channel == "email":
        subject = f"验证码 / Verification code: {zh_purpose}"
        body += (
            "\n\n如非本人操作，请忽略本邮件。 If this was not you, ignore this email."
        )
    return subject, body


# Notices: messages that carry no code. ``{masked}`` is filled from params.
_NOTICE_TEXT = {
    "phone_taken_over": (
        "您账号绑定的手机号{phone_masked}已被该号码的新持有人验证并绑定到另一账号，"
        "您的账号已解除该手机号。请登录后绑定新的手机号。",
        "The phone number {phone_masked} on your account was verified by its new "
        "holder and bound to another account; it was removed from yours. Please "
        "sign in and bind a new phone.",
    ),
    "phone_changed": (
        "您账号绑定的手机号已更换为{phone_masked}。",
        "The phone number on your account was changed to {phone_masked}.",
    ),
    "email_changed": (
        "您账号绑定的邮箱已更换为{email_masked}。",
        "The email address on your account was changed to {email_masked}.",
    ),
    "password_reset": (
        "您账号的密码已重置，所有设备已退出登录。",
        "The password of your account was reset and every session was ended.",
    ),
    "phone_recovered": (
        "两位同学已为您助力验证：账号手机号已换绑为{phone_masked}，密码已重置，"
        "所有设备已退出登录。",
        "Two classmates vouched for you: your account's phone is now {phone_masked}, "
        "the password was reset and every session was ended.",
    ),
    "phone_recovered_elsewhere": (
        "您账号的手机号已通过“忘记手机号”（同学助力）换绑为{phone_masked}，密码已重置。"
        "如非本人操作，请在7天内打开以下链接撤销并锁定账号：{not_me_url}",
        "Your account's phone was changed to {phone_masked} by forgot-phone recovery "
        "(classmates vouched) and the password was reset. If this was not you, open "
        "this link within 7 days to undo it and lock the account: {not_me_url}",
    ),
    "recovery_reverted": (
        "您报告了“不是本人操作”：账号已锁定，原手机号已恢复（如仍可用），"
        "所有设备已退出登录，平台将人工审核。",
        'You reported "not me": the account is locked, the old phone restored where '
        "possible, every session ended, and the platform will review it.",
    ),
    "id_binding_moved": (
        "经审核，您账号绑定的证件号码已转移到证件持有人本人的账号，您的账号仍保留，"
        "可继续用手机号或邮箱登录。",
        "After review, the ID number bound to your account was moved to its holder's "
        "own account. Your account stays; sign in with your phone or email.",
    ),
    "id_binding_move_scheduled": (
        "有人以“证件号重复”申请将您账号绑定的证件号码转移到其本人账号，已有同学为其助力。"
        "若无异议，将于{effective_date}（北京时间）转移，您的账号仍保留。"
        "如该证件是您本人的，请在此之前打开链接 {not_me_url} 提出异议，平台将人工审核。",
        "Someone asked, as a duplicate ID, to move the ID number bound to your account "
        "to their own account, and classmates vouched for them. Unless you object, it "
        "moves on {effective_date} (Beijing time); your account stays. If the ID is "
        "yours, object before then at {not_me_url} and a reviewer will decide.",
    ),
    "account_deactivated": (
        "您的账号已注销，此操作不可恢复。",
        "Your account was closed. This cannot be undone.",
    ),
    "new_device_login": (
        "您的账号在一台新设备上登录。",
        "Your account was signed in on a new device.",
    ),
    "security_questions_set": (
        "您账号的密保问题已重新设置。",
        "The security questions of your account were set anew.",
    ),
}
# Optional circumstances a notice names when the sender knows them.
_NOTICE_CONTEXT = (
    ("changed_at", "时间：{}（北京时间）", "When: {} (Beijing time)"),
    ("device", "设备：{}", "Device: {}"),
    ("area", "网络：{}", "Network: {}"),
)
NOTICE_KINDS = tuple(_NOTICE_TEXT)
_NOT_YOU = (
    "如非本人操作，请立即联系学校或平台客服举报。",
    "If this was not you, report it to your school or the platform at once.",
)


def render_notice(channel, kind, params):
    """``(subject, body)`` of a notice, Chinese first; params are masked values."""
    zh, en = _NOTICE_TEXT[kind]
    values = {key: str(value) for key, value in (params or {}).items()}
    try:
        zh, en = zh.format(**values), en.format(**values)
    except KeyError as missing:
        raise ValueError(f"notice {kind} needs {missing}") from None
    context_zh = "；".join(
        zh_line.format(values[key])
        for key, zh_line, _ in _NOTICE_CONTEXT
        if key in values
    )
    context_en = "; ".join(
        en_line.format(values[key])
        for key, _, en_line in _NOTICE_CONTEXT
        if key in values
    )
    if context_zh:
        zh, en = f"{zh}（{context_zh}）", f"{en} ({context_en}.)"
    body = f"【学生账号自助服务】{zh}{_NOT_YOU[0]}\n{en} {_NOT_YOU[1]}"
    subject = "账号安全通知 / Account security notice" if channel == "email" else None
    return subject, body


@dataclass(frozen=True)
class GuessOutcome:
    kill_codes: bool  # the live codes for destination + purpose die
    lock_until: datetime | None


def after_wrong_guess(wrong_guesses, lockouts_today, policy, now):
    """What a wrong guess leads to, given the counts *including* this guess."""
    if wrong_guesses < policy.max_wrong_guesses:
        return GuessOutcome(kill_codes=False, lock_until=None)
    lock_until = None
    if lockouts_today + 1 >= policy.lockouts_before_lock:
        lock_until = now + policy.lock_duration
    return GuessOutcome(kill_codes=True, lock_until=lock_until)


def lock_refusal(guess_counter, now):
    """``too_many_attempts`` while the destination is locked, else None."""
    locked_until = guess_counter["locked_until"] if guess_counter else None
    if locked_until and locked_until > now:
        return Throttled(
            "too_many_attempts", {"retry_after": seconds_until(locked_until - now)}
        )
    return None


def window_start(now, seconds):
    """Start of the fixed ``seconds``-long window containing ``now`` (UTC epoch aligned)."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo)


def destination_refusal(quota, now, policy):
    """Why the destination's reservation failed: cooldown first, then the day."""
    if policy.resend_cooldown and quota and quota["last_sent_at"] is not None:
        wait = quota["last_sent_at"] + policy.resend_cooldown - now
        if wait.total_seconds() > 0:
            return Throttled("resend_too_soon", {"retry_after": seconds_until(wait)})
    resets_at = next_beijing_midnight(now)
    return Throttled(
        "daily_limit_reached",
        {
            "resets_at": resets_at.isoformat(),
            "retry_after": seconds_until(resets_at - now),
        },
    )


def seconds_until(delta):
    """Whole seconds to wait (rounded up, at least 1) for a Retry-After."""
    return max(1, math.ceil(delta.total_seconds()))


def judge_code(match, now):
    """``None`` if ``match`` (a stored code row, or None) may be used now,
    else the refusal code."""
    if match is None or match["dead_at"] is not None:
        return "code_invalid"
    if match["used_at"] is not None:
        return "code_used"
    if match["expires_at"] <= now:
        return "code_expired"
    return None


CAPTCHA_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def generate_captcha_text(length=4):
    return "".join(secrets.choice(CAPTCHA_ALPHABET) for _ in range(length))


def captcha_hash(key, captcha_id, answer):
    normalised = (answer or "").strip().upper()
    return hmac.new(
        key, f"{captcha_id}\x1f{normalised}".encode(), hashlib.sha256
    ).hexdigest()
