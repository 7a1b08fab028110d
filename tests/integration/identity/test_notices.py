"""Every credential change is announced on every channel the account had
bound before it, through the outbox, identity's own handler, verification's
delivery queue and the real SMS capture and SMTP server: a new device, the
security questions, the email, the phone, and the deactivation (announced
before the data is erased). No notice carries a code or a full number."""

import re
import uuid

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.errors import Forbidden
from services.common.plumbing.testing import random_phone, wait_until

from .test_registration import platform, random_id_number, register  # noqa: F401

PASSWORD = "long enough secret"
CLIENT_IP = "203.0.113.77"


def code_sent(capture, to, before):
    wait_until(lambda: len(capture.messages(to)) > before, message=f"a code to {to}")
    return re.search(r"验证码：(\d{6})", capture.messages(to)[0]["body"]).group(1)


def ask_code(config, capture, to, purpose):
    before = len(capture.messages(to))
    with ServiceRpcProxy("verification", config) as verification:
        verification.issue_code(
            {
                "channel": "email" if "@" in to else "sms",
                "destination": to,
                "purpose": purpose,
            }
        )
    return code_sent(capture, to, before)


def notice_to(capture, to, words):
    """The newest notice (not a code message) to ``to`` containing ``words``."""

    def find():
        return next(
            (
                m
                for m in capture.messages(to)
                if words in m["body"] and "请立即联系学校或平台客服举报" in m["body"]
            ),
            None,
        )

    return wait_until(find, timeout=15, message=f"notice '{words}' to {to}")


def assert_safe(message, *secrets):
    body = message["body"]
    assert "验证码" not in body and not re.search(r"\b\d{6}\b", body), body
    for secret in secrets:
        assert secret not in body, (secret, body)
    assert "北京时间" in body and "If this was not you" in body


@pytest.fixture
def account(platform, capture):  # noqa: F811
    phone = random_phone()
    email = f"n-{uuid.uuid4().hex[:8]}@school.edu.cn"
    created = register(platform, capture, phone, random_id_number(), email=email)
    return {"id": created["account_id"], "phone": phone, "email": email}


def test_every_credential_change_is_announced_on_every_bound_channel(
    platform,  # noqa: F811
    capture,
    account,
    db_query,
):
    phone, email = account["phone"], account["email"]
    device = "dev-" + uuid.uuid4().hex
    with ServiceRpcProxy("identity", platform) as identity:
        # 1. A new device signs in (after its code): phone and email hear of it.
        before = len(capture.messages(phone))
        login = {
            "login": phone,
            "password": PASSWORD,
            "device_id": device,
            "client_ip": CLIENT_IP,
        }
        with pytest.raises(Forbidden):
            identity.login(login)
        identity.login({**login, "code": code_sent(capture, phone, before)})
        for to in (phone, email):
            message = notice_to(capture, to, "新设备")
            assert_safe(message, device, CLIENT_IP)
            assert device[:6] + "…" + device[-2:] in message["body"]
            assert "203.0.113.*" in message["body"]

        # 2. Security questions set anew.
        identity.set_security_questions(
            {
                "account_id": account["id"],
                "password": PASSWORD,
                "questions": [
                    {"question": "小学班主任", "answer": "王老师"},
                    {"question": "第一只宠物", "answer": "小白"},
                    {"question": "出生的城市", "answer": "南京"},
                ],
                "device_id": device,
                "client_ip": CLIENT_IP,
            }
        )
        for to in (phone, email):
            assert_safe(notice_to(capture, to, "密保问题"), "王老师")

        # 3. The email changes: the OLD address is told (and the phone).
        new_email = f"m-{uuid.uuid4().hex[:8]}@school.edu.cn"
        identity.change_email(
            {
                "account_id": account["id"],
                "password": PASSWORD,
                "new_email": new_email,
                "code": ask_code(platform, capture, new_email, "change_email"),
                "device_id": device,
            }
        )
        for to in (email, phone):
            message = notice_to(capture, to, "邮箱已更换")
            assert_safe(message, new_email)
            assert new_email[0] + "***@school.edu.cn" in message["body"]

        # 4. The phone changes: the OLD phone is told by SMS (and the email).
        new_phone = random_phone()
        identity.change_phone(
            {
                "account_id": account["id"],
                "password": PASSWORD,
                "new_phone": new_phone,
                "code": ask_code(platform, capture, new_phone, "change_phone"),
                "device_id": device,
            }
        )
        for to in (phone, new_email):
            message = notice_to(capture, to, "手机号已更换")
            assert_safe(message, new_phone)
            assert new_phone[:3] + "****" + new_phone[-4:] in message["body"]

        # 5. Deactivation: queued before the erase, so both channels hear of it.
        identity.deactivate(
            {
                "account_id": account["id"],
                "code": ask_code(platform, capture, new_phone, "deactivate"),
                "device_id": device,
            }
        )
        for to in (new_phone, new_email):
            assert_safe(notice_to(capture, to, "账号已注销"))

    sql = db_query("identity")
    rows = wait_until(
        lambda: (
            (
                rows := sql(
                    "SELECT kind, channel, sealed_destination, queued_at FROM notices"
                    " WHERE account_id = %s ORDER BY id",
                    (account["id"],),
                )
            )
            and all(r["queued_at"] for r in rows)
            and rows
        ),
        message="every notice handed over",
    )
    assert [(r["kind"], r["channel"]) for r in rows] == [
        ("new_device_login", "sms"),
        ("new_device_login", "email"),
        ("security_questions_set", "sms"),
        ("security_questions_set", "email"),
        ("email_changed", "sms"),
        ("email_changed", "email"),
        ("phone_changed", "sms"),
        ("phone_changed", "email"),
        ("account_deactivated", "sms"),
        ("account_deactivated", "email"),
    ]
    # Once handed over, the sealed destination is wiped.
    assert all(r["sealed_destination"] is None for r in rows)
    # The erased account's contacts are nowhere in identity any more.
    assert sql("SELECT phone, email FROM accounts WHERE id = %s", (account["id"],)) == [
        {"phone": None, "email": None}
    ]
