"""Registration by phone through real identity and verification services:
the register code is sent, read from the capture server and used; ID
numbers are stored sealed; duplicates and recycled phones follow the rules."""

import random
import re
import uuid

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.errors import Conflict, RuleViolation
from services.common.plumbing.testing import wait_until
from services.common.rules.realname import resident_check_char
from services.identity.service import IdentityService
from services.verification.service import VerificationService


def random_id_number():
    first17 = (
        f"11010519{random.randint(50, 99)}0{random.randint(1, 9)}1{random.randint(0, 8)}"
        f"{random.randint(100, 999)}"
    )
    return first17 + resident_check_char(first17)


@pytest.fixture
def platform(container_factory, make_config, capture):
    verification = make_config(
        "verification",
        SMS_HTTP_URL=capture.sms_url,
        SMTP_PORT=capture.smtp,
        DELIVERY_POLL_SECONDS=0.1,
    )
    verification["VERIFICATION_LIMITS"] = {
        **verification["VERIFICATION_LIMITS"],
        "resend_cooldown": 0,
    }
    container_factory(VerificationService, verification).start()
    # Cheaper argon2 in tests: the parameters are checked in the unit tier.
    identity = make_config("identity", ARGON2_MEMORY_KIB=1024, ARGON2_TIME_COST=1)
    container_factory(IdentityService, identity).start()
    return identity


@pytest.fixture
def identity_sql(db_query):
    return db_query("identity")


def register(config, capture, phone, id_number, **extra):
    before = len(capture.messages(phone))
    with ServiceRpcProxy("verification", config) as verification:
        verification.issue_code(
            {"channel": "sms", "destination": phone, "purpose": "register"}
        )
    wait_until(lambda: len(capture.messages(phone)) > before, message="register code")
    message = capture.messages(phone)[0]  # newest first
    code = re.search(r"验证码：(\d{6})", message["body"]).group(1)
    with ServiceRpcProxy("identity", config) as identity:
        return identity.register_by_phone(
            {
                "phone": phone,
                "code": code,
                "password": "long enough secret",
                "name": "张三",
                "id_type": "resident_id",
                "id_number": id_number,
                **extra,
            }
        )


def phone():
    return f"136{random.randint(0, 99_999_999):08d}"


def test_registration_uses_the_code_and_seals_the_id_number(
    platform, capture, identity_sql
):
    id_number = random_id_number()
    created = register(platform, capture, phone(), id_number.lower())
    assert created["status"] == "active" and created["passport_id"].startswith("P")
    row = identity_sql(
        "SELECT * FROM accounts WHERE id = %s", (created["account_id"],)
    )[0]
    assert id_number.encode() not in bytes(row["id_number_sealed"])
    assert row["id_number_hash"] != id_number and len(row["id_number_hash"]) == 64
    assert row["password_hash"].startswith("$argon2id$")
    audit = identity_sql(
        "SELECT action, detail::text FROM audit_log WHERE account_id = %s",
        (created["account_id"],),
    )
    assert [a["action"] for a in audit] == ["registered"]
    assert id_number not in audit[0]["detail"] and "张三" not in audit[0]["detail"]


def test_a_used_code_cannot_register_twice(platform, capture):
    mobile = phone()
    register(platform, capture, mobile, random_id_number())
    code = re.search(r"验证码：(\d{6})", capture.messages(mobile)[0]["body"]).group(1)
    with ServiceRpcProxy("identity", platform) as identity:
        with pytest.raises(RuleViolation) as caught:
            identity.register_by_phone(
                {
                    "phone": mobile,
                    "code": code,
                    "password": "another long secret",
                    "name": "李四",
                    "id_type": "resident_id",
                    "id_number": random_id_number(),
                }
            )
    assert caught.value.code == "code_used"


def test_duplicate_id_is_refused_then_allowed_as_duplicate_pending(platform, capture):
    id_number = random_id_number()
    register(platform, capture, phone(), id_number)
    with pytest.raises(Conflict) as caught:
        register(platform, capture, phone(), id_number)
    assert caught.value.code == "id_already_registered"
    pending = register(platform, capture, phone(), id_number, register_anyway=True)
    assert pending["status"] == "duplicate_pending"


def test_a_recycled_phone_moves_to_the_new_account(platform, capture, identity_sql):
    mobile = phone()
    first = register(
        platform,
        capture,
        mobile,
        random_id_number(),
        email=f"old-{uuid.uuid4().hex[:6]}@school.edu.cn",
    )
    second = register(platform, capture, mobile, random_id_number())
    rows = {
        r["id"]: r["phone"]
        for r in identity_sql(
            "SELECT id::text, phone FROM accounts WHERE id::text IN (%s, %s)",
            (first["account_id"], second["account_id"]),
        )
    }
    assert rows == {first["account_id"]: None, second["account_id"]: "+86" + mobile}
    actions = identity_sql(
        "SELECT action FROM audit_log WHERE account_id = %s", (first["account_id"],)
    )
    assert [a["action"] for a in actions] == ["registered", "phone_taken_over"]


def test_rule_failures_do_not_consume_the_code(platform, capture):
    mobile = phone()
    with ServiceRpcProxy("verification", platform) as verification:
        verification.issue_code(
            {"channel": "sms", "destination": mobile, "purpose": "register"}
        )
    message = wait_until(lambda: capture.messages(mobile), message="code")[0]
    code = re.search(r"验证码：(\d{6})", message["body"]).group(1)
    base = {
        "phone": mobile,
        "code": code,
        "password": "long enough secret",
        "name": "张三",
        "id_type": "resident_id",
        "id_number": random_id_number(),
    }
    with ServiceRpcProxy("identity", platform) as identity:
        for change, rule in (
            ({"id_number": "110105194912310021"}, "id_checksum_invalid"),
            ({"name": "張三"}, "name_traditional"),
            ({"password": "password123"}, "password_too_common"),
        ):
            with pytest.raises(RuleViolation) as caught:
                identity.register_by_phone({**base, **change})
            assert caught.value.code == rule
        assert identity.register_by_phone(base)["status"] == "active"


def test_the_account_losing_its_phone_is_told_by_email(platform, capture):
    """Through the outbox: phone_taken_over -> identity's own handler ->
    verification.send_notice -> the delivery queue -> real SMTP."""
    mobile = phone()
    address = f"old-{uuid.uuid4().hex[:8]}@school.edu.cn"
    register(platform, capture, mobile, random_id_number(), email=address)
    register(platform, capture, mobile, random_id_number())
    notice = wait_until(
        lambda: capture.messages(address), timeout=15, message="takeover email"
    )[0]
    assert notice["channel"] == "email"
    assert mobile[:3] + "****" + mobile[-4:] in notice["body"]
    assert mobile not in notice["body"]
    assert "验证码" not in notice["body"]  # a notice, not a code
