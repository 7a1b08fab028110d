"""Verification rules without a broker or database: the Beijing day, the
refusal a client sees, profiles, guess counting, templates, destinations."""

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.contract.errors import InvalidRequest, Throttled
from services.verification import domain

UTC = timezone.utc
DEFAULT = domain.PROFILES["default"]


@pytest.fixture
def server_in_utc():
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_beijing_day_turns_at_beijing_midnight_while_server_runs_utc(server_in_utc):
    last_second = datetime(2026, 11, 24, 15, 59, 59, tzinfo=UTC)  # 23:59:59 CST
    midnight = datetime(2026, 11, 24, 16, 0, 0, tzinfo=UTC)  # 00:00:00 CST
    assert domain.beijing_day(last_second).isoformat() == "2026-11-24"
    assert domain.beijing_day(midnight).isoformat() == "2026-11-25"
    # The UTC calendar still says the 24th for both.
    assert last_second.date() == midnight.date()


def test_quota_resets_at_the_next_beijing_midnight():
    now = datetime(2026, 11, 24, 15, 59, 59, tzinfo=UTC)
    resets = domain.next_beijing_midnight(now)
    assert resets.isoformat() == "2026-11-25T00:00:00+08:00"
    assert resets - now == timedelta(seconds=1)
    after = domain.next_beijing_midnight(datetime(2026, 11, 24, 16, 0, 0, tzinfo=UTC))
    assert after.isoformat() == "2026-11-26T00:00:00+08:00"


def test_refusal_is_cooldown_with_seconds_to_wait_while_cooling_down():
    now = datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)
    quota = {
        "day": domain.beijing_day(now),
        "sent_today": 1,
        "last_sent_at": now - timedelta(seconds=45),
    }
    refusal = domain.destination_refusal(quota, now, DEFAULT)
    assert isinstance(refusal, Throttled)
    assert refusal.code == "resend_too_soon" and refusal.extra["retry_after"] == 15


def test_refusal_is_daily_limit_with_reset_time_once_cooled_down():
    now = datetime(2026, 11, 24, 15, 59, 0, tzinfo=UTC)
    quota = {
        "day": domain.beijing_day(now),
        "sent_today": 5,
        "last_sent_at": now - timedelta(minutes=5),
    }
    refusal = domain.destination_refusal(quota, now, DEFAULT)
    assert refusal.code == "daily_limit_reached"
    assert refusal.extra["resets_at"] == "2026-11-25T00:00:00+08:00"
    assert refusal.extra["retry_after"] == 60


@pytest.mark.parametrize(
    "profile,minutes", [("default", 30), ("chsi", 24 * 60), ("strict", 10)]
)
def test_profiles_set_code_validity(profile, minutes):
    assert domain.PROFILES[profile].validity == timedelta(minutes=minutes)
    assert domain.PROFILES[profile].daily_limit_per_destination == 5


def test_policy_overrides_from_config_keep_types():
    policy = domain.policy_for(
        "strict",
        {
            "resend_cooldown": 0,
            "daily_limit_per_destination": "7",
            "hourly_limit_per_ip": None,
        },
    )
    assert policy.resend_cooldown == timedelta(0)
    assert policy.daily_limit_per_destination == 7
    assert policy.hourly_limit_per_ip == DEFAULT.hourly_limit_per_ip
    assert policy.validity == timedelta(minutes=10)
    with pytest.raises(ValueError):
        domain.policy_for("lenient")


@pytest.mark.parametrize(
    "wrong,lockouts,kill,locked",
    [
        (1, 0, False, False),
        (4, 0, False, False),
        (5, 0, True, False),  # fifth wrong guess: the codes die
        (5, 1, True, False),
        (5, 2, True, True),  # third round of five in a day: destination locked
    ],
)
def test_wrong_guesses_kill_codes_then_lock(wrong, lockouts, kill, locked):
    now = datetime(2026, 11, 24, tzinfo=UTC)
    outcome = domain.after_wrong_guess(wrong, lockouts, DEFAULT, now)
    assert outcome.kill_codes is kill
    assert (
        (outcome.lock_until == now + DEFAULT.lock_duration)
        if locked
        else (outcome.lock_until is None)
    )


def test_sms_template_is_chinese_first_with_code_purpose_and_validity():
    subject, body = domain.render_message(
        "sms", "register", "123456", timedelta(minutes=30)
    )
    assert subject is None
    assert body.index("验证码：123456") < body.index("Your code")
    assert "注册账号" in body and "30分钟" in body and "30 minutes" in body


def test_email_template_has_subject_and_hours_for_the_chsi_profile():
    subject, body = domain.render_message(
        "email", "reset_password", "654321", timedelta(hours=24)
    )
    assert "重置密码" in subject and "24小时" in body and "24 hours" in body


@pytest.mark.parametrize(
    "given_,expected",
    [
        ("13812345678", "+8613812345678"),
        ("+8613812345678", "+8613812345678"),
        ("138 1234 5678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
    ],
)
def test_mainland_mobiles_normalise_to_e164(given_, expected):
    assert domain.normalise_destination("sms", given_) == expected


@pytest.mark.parametrize(
    "bad", ["12345678901", "010-12345678", "+14155552671", "abc", ""]
)
def test_non_mobile_or_foreign_numbers_are_refused(bad):
    with pytest.raises(InvalidRequest) as caught:
        domain.normalise_destination("sms", bad)
    assert caught.value.code == "phone_invalid"


def test_emails_are_validated_and_domain_lowercased():
    assert (
        domain.normalise_destination("email", " Li.Si@School.EDU.cn ")
        == "Li.Si@school.edu.cn"
    )
    for bad in ("no-at-sign", "a@b", "a@@b.cn"):
        with pytest.raises(InvalidRequest):
            domain.normalise_destination("email", bad)


def test_code_hash_binds_destination_and_purpose():
    key = b"k" * 32
    base_hash = domain.code_hash(key, "+8613812345678", "register", "123456")
    assert base_hash != domain.code_hash(key, "+8613812345679", "register", "123456")
    assert base_hash != domain.code_hash(key, "+8613812345678", "deactivate", "123456")
    assert base_hash != domain.code_hash(
        b"x" * 32, "+8613812345678", "register", "123456"
    )
    assert "123456" not in base_hash


@given(st.integers(min_value=0, max_value=200))
def test_generated_codes_are_six_digits(_):
    code = domain.generate_code()
    assert len(code) == 6 and code.isdigit()


def test_judge_code():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    live = {"dead_at": None, "used_at": None, "expires_at": now + timedelta(minutes=1)}
    assert domain.judge_code(live, now) is None
    assert domain.judge_code(None, now) == "code_invalid"
    assert domain.judge_code({**live, "used_at": now}, now) == "code_used"
    assert domain.judge_code({**live, "expires_at": now}, now) == "code_expired"
    assert domain.judge_code({**live, "dead_at": now}, now) == "code_invalid"


def test_windows_are_aligned():
    now = datetime(2026, 11, 24, 10, 37, 12, tzinfo=UTC)
    assert domain.window_start(now, 3600) == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert domain.window_start(now, 60) == datetime(2026, 11, 24, 10, 37, tzinfo=UTC)
    assert domain.beijing_day_start(now).isoformat() == "2026-11-24T00:00:00+08:00"


def test_captcha_answer_is_case_insensitive_and_bound_to_its_id():
    key = b"k" * 32
    assert domain.captcha_hash(key, "id1", "ab2C") == domain.captcha_hash(
        key, "id1", "AB2C "
    )
    assert domain.captcha_hash(key, "id1", "AB2C") != domain.captcha_hash(
        key, "id2", "AB2C"
    )
    text = domain.generate_captcha_text()
    assert len(text) == 4 and set(text) <= set(domain.CAPTCHA_ALPHABET)


def test_a_locked_destination_is_refused_until_the_lock_ends():
    now = datetime(2026, 11, 24, tzinfo=UTC)
    locked = {"locked_until": now + timedelta(seconds=90)}
    refusal = domain.lock_refusal(locked, now)
    assert refusal.code == "too_many_attempts" and refusal.extra["retry_after"] == 90
    assert domain.lock_refusal({"locked_until": now}, now) is None
    assert domain.lock_refusal(None, now) is None
