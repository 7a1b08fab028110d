"""Exact texts and boundaries of the verification rules (each case here
killed a mutant that survived the rest of the unit tier: `make mutate`)."""

from datetime import datetime, timedelta, timezone

import pytest

from services.verification import domain

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "validity,zh,en",
    [
        (timedelta(minutes=30), "30分钟", "30 minutes"),
        (timedelta(minutes=90), "90分钟", "90 minutes"),
        (timedelta(hours=1), "1小时", "1 hour"),
        (timedelta(hours=2), "2小时", "2 hours"),
        (timedelta(hours=24), "24小时", "24 hours"),
        (timedelta(seconds=119), "1分钟", "1 minutes"),
    ],
)
def test_validity_is_said_in_whole_hours_or_minutes(validity, zh, en):
    _, body = domain.render_message("sms", "register", "123456", validity)
    assert f"{zh}内有效" in body and f"valid for {en}." in body


def test_email_gets_a_subject_and_the_ignore_line_sms_does_not():
    subject, body = domain.render_message("email", "register", "1", timedelta(hours=1))
    assert subject == "验证码 / Verification code: 注册账号"
    assert body.endswith("If this was not you, ignore this email.")
    subject, body = domain.render_message("sms", "register", "1", timedelta(hours=1))
    assert subject is None and "ignore this email" not in body
    subject, _ = domain.render_notice("email", "password_reset", {})
    assert subject == "账号安全通知 / Account security notice"
    assert domain.render_notice("sms", "password_reset", {})[0] is None


def test_a_notice_missing_a_parameter_says_which():
    with pytest.raises(ValueError, match="phone_masked"):
        domain.render_notice("sms", "phone_changed", {})


def test_cooldown_edge_and_retry_after_rounding():
    policy = domain.policy_for("default", {"resend_cooldown": 60})
    sent = {"last_sent_at": NOW - timedelta(seconds=59, milliseconds=500)}
    refusal = domain.destination_refusal(sent, NOW, policy)
    assert refusal.code == "resend_too_soon" and refusal.extra["retry_after"] == 1
    # Exactly at the end of the cooldown it is the day's limit that refused.
    ended = {"last_sent_at": NOW - timedelta(seconds=60)}
    assert domain.destination_refusal(ended, NOW, policy).code == "daily_limit_reached"
    assert domain.seconds_until(timedelta(seconds=1.2)) == 2
    assert domain.seconds_until(timedelta(0)) == 1


def test_no_cooldown_means_only_the_day_refuses():
    policy = domain.policy_for("default", {"resend_cooldown": 0})
    quota = {"last_sent_at": NOW}
    assert domain.destination_refusal(quota, NOW, policy).code == "daily_limit_reached"
    assert domain.destination_refusal(None, NOW, policy).code == "daily_limit_reached"


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="'nope'"):
        domain.policy_for("nope")


def test_an_override_of_none_keeps_the_profile_value_and_later_ones_apply():
    policy = domain.policy_for(
        "default", {"daily_limit_per_destination": None, "resend_cooldown": 5}
    )
    assert policy.daily_limit_per_destination == 5
    assert policy.resend_cooldown == timedelta(seconds=5)


def test_captcha_answers_are_case_insensitive():
    key = b"k" * 32
    assert domain.captcha_hash(key, "id", " ab2c ") == domain.captcha_hash(
        key, "id", "AB2C"
    )
