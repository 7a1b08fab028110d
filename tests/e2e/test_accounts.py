"""Registration over HTTP: a register code goes out by SMS, is read from the
capture server, and is used by the registration flow."""

import random
import re

import requests

from services.common.plumbing.testing import wait_until
from services.common.rules.realname import resident_check_char


def random_id_number():
    first17 = (
        f"3201021990{random.randint(1, 12):02d}{random.randint(10, 28)}"
        f"{random.randint(100, 999)}"
    )
    return first17 + resident_check_char(first17)


def send_code_and_read_it(api, platform, phone):
    before = len(
        requests.get(
            f"{platform.capture_url}/api/messages", params={"to": phone}, timeout=5
        ).json()
    )
    assert (
        api.post(
            "/api/v1/codes",
            json={"channel": "sms", "destination": phone, "purpose": "register"},
        ).status_code
        == 202
    )

    def newest():
        found = requests.get(
            f"{platform.capture_url}/api/messages", params={"to": phone}, timeout=5
        ).json()
        return found[0] if len(found) > before else None

    return re.search(
        r"验证码：(\d{6})", wait_until(newest, message="sms")["body"]
    ).group(1)


def test_register_with_a_code_from_the_sms_then_duplicate_id_paths(api, platform):
    phone = f"135{random.randint(0, 99_999_999):08d}"
    id_number = random_id_number()
    body = {
        "phone": phone,
        "password": "a long enough secret",
        "name": "王小明",
        "id_type": "resident_id",
        "id_number": id_number,
    }
    created = api.post(
        "/api/v1/accounts",
        json={**body, "code": send_code_and_read_it(api, platform, phone)},
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "active"
    assert created.json()["passport_id"].startswith("P")

    other_phone = f"135{random.randint(0, 99_999_999):08d}"
    code = send_code_and_read_it(api, platform, other_phone)
    duplicate = api.post(
        "/api/v1/accounts", json={**body, "phone": other_phone, "code": code}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "id_already_registered"
    assert duplicate.json()["see"] == "/api/v1/username-recovery"
    # The refusal came before the code was used: the same code still works.
    anyway = api.post(
        "/api/v1/accounts",
        json={**body, "phone": other_phone, "code": code, "register_anyway": True},
    )
    assert anyway.status_code == 201 and anyway.json()["status"] == "duplicate_pending"


def test_a_failed_rule_is_a_422_naming_it(api):
    answer = api.post(
        "/api/v1/accounts",
        json={
            "phone": "13512345678",
            "code": "123456",
            "password": "a long enough secret",
            "name": "張三",
            "id_type": "resident_id",
            "id_number": random_id_number(),
        },
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "name_traditional"
    assert answer.json()["suggestion"] == "张三"
