"""Who hears of a credential change, and what the notice may say."""

from datetime import datetime, timezone

import pytest

from services.common.rules.masking import mask_device, mask_ip
from services.identity import domain
from services.verification.domain import render_notice

ACCOUNT = {"phone": "+8613812345678", "email": "li.si@school.edu.cn"}


@pytest.mark.parametrize(
    "kind",
    [k for k in domain.NOTICE_KINDS if k != "phone_taken_over"],
)
def test_every_bound_channel_hears_of_a_change(kind):
    assert domain.notice_destinations(kind, ACCOUNT) == [
        ("sms", "+8613812345678"),
        ("email", "li.si@school.edu.cn"),
    ]


def test_an_unbound_channel_is_skipped_and_a_lost_phone_is_not_told():
    assert domain.notice_destinations("phone_changed", {"phone": "+8613812345678"}) == [
        ("sms", "+8613812345678")
    ]
    assert domain.notice_destinations("phone_taken_over", ACCOUNT) == [
        ("email", "li.si@school.edu.cn")
    ]
    with pytest.raises(ValueError):
        domain.notice_destinations("password_guessed", ACCOUNT)


def test_params_are_beijing_time_and_masked():
    now = datetime(2026, 11, 24, 16, 30, tzinfo=timezone.utc)
    params = domain.notice_params(
        now, "dev-0123456789abcdef", "203.0.113.77", phone_masked="138****5678"
    )
    assert params == {
        "changed_at": "2026-11-25 00:30",
        "device": "dev-01…ef",
        "area": "203.0.113.*",
        "phone_masked": "138****5678",
    }
    assert domain.notice_params(now, None, "not an address") == {
        "changed_at": "2026-11-25 00:30"
    }


def test_masking_of_networks_and_devices():
    assert mask_ip("2001:db8:1:2::7") == "2001:db8:1::/48"
    assert mask_ip("garbage") is None
    assert mask_device("abc") == "***"


def test_a_notice_names_when_where_and_what_to_do_in_both_languages():
    _, body = render_notice(
        "sms",
        "new_device_login",
        {
            "changed_at": "2026-11-25 00:30",
            "device": "dev-01…ef",
            "area": "203.0.113.*",
        },
    )
    assert "新设备" in body and "new device" in body
    assert "时间：2026-11-25 00:30（北京时间）" in body
    assert "Device: dev-01…ef" in body and "网络：203.0.113.*" in body
    assert "请立即联系" in body and "If this was not you" in body
