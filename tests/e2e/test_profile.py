"""Username recovery, student-number registration, email, security
questions, guardian phone and linked identities, over HTTP."""

import time
import uuid
from datetime import datetime

import jwt
import psycopg2

from services.common.plumbing.testing import random_phone, random_resident_id


def recovery_attempt(api, inbox, id_number, name, right_captcha=True):
    captcha = api.post("/api/v1/captchas").json()
    answer = inbox.captcha(captcha["captcha_id"]) if right_captcha else "WRONG"
    return api.post(
        "/api/v1/username-recovery",
        json={
            "id_number": id_number,
            "name": name,
            "captcha_id": captcha["captcha_id"],
            "captcha_answer": answer,
        },
    )


def test_username_recovery_shows_masked_login_names(api, student, inbox):
    me = student(name="赵小燕", email=f"z{uuid.uuid4().hex[:8]}@school.edu.cn")
    found = recovery_attempt(api, inbox, me["id_number"].lower(), "赵小燕")
    assert found.status_code == 200, found.text
    names = {item["kind"]: item["value"] for item in found.json()["login_names"]}
    assert names["phone"] == me["phone"][:3] + "****" + me["phone"][-4:]
    assert names["passport_id"] == me["passport_id"]
    assert names["email"].startswith("z***@")
    assert names["id_number"] == me["id_number"][:3] + "*" * 11 + me["id_number"][-4:]
    assert me["phone"] not in found.text and me["id_number"] not in found.text


def test_username_recovery_wrong_captcha_answers_alike_then_throttles(
    api, student, inbox
):
    me = student(name="钱多多", login=False)
    unknown = random_resident_id()
    # With a wrong captcha, an existing and an unknown ID number answer alike.
    existing = recovery_attempt(api, inbox, me["id_number"], "钱多多", False)
    missing = recovery_attempt(api, inbox, unknown, "钱多多", False)
    assert existing.status_code == missing.status_code == 422
    assert existing.json() == missing.json()
    assert existing.json()["code"] == "captcha_invalid"
    # A right captcha but a wrong name: no match (strong proof was given).
    wrong_name = recovery_attempt(api, inbox, me["id_number"], "钱少少")
    assert wrong_name.status_code == 404 and wrong_name.json()["code"] == "no_match"
    # Five failures for this ID number: "不能频繁使用该功能" for an hour.
    for _ in range(3):
        recovery_attempt(api, inbox, me["id_number"], "钱少少")
    throttled = recovery_attempt(api, inbox, me["id_number"], "钱多多")
    assert throttled.status_code == 429, throttled.text
    assert throttled.json()["code"] == "too_frequent"
    assert 3500 <= int(throttled.headers["Retry-After"]) <= 3600


def test_student_number_registration_with_a_guardian_code(api, codes):
    guardian = random_phone("138")
    school = "E2E" + uuid.uuid4().hex[:6].upper()
    body = {
        "school_code": school,
        "student_number": "20240117",
        "name": "李小花",
        "guardian_phone": guardian,
        "password": "a long enough secret",
    }
    device = {"X-Device-Id": "kid-" + uuid.uuid4().hex}
    created = api.post(
        "/api/v1/accounts/by-student-number",
        json={**body, "code": codes("guardian_check", guardian)},
        headers=device,
    )
    assert created.status_code == 201, created.text
    passport_id = created.json()["passport_id"]
    session = api.post(
        "/api/v1/sessions",
        json={"login": passport_id, "password": body["password"]},
        headers=device,
    )
    assert session.status_code == 201, session.text
    auth = {"Authorization": f"Bearer {session.json()['token']}", **device}
    me = api.get("/api/v1/me", headers=auth).json()
    assert me["school_code"] == school and me["student_number"] == "20240117"
    assert me["registry_status"] == "pending"
    assert me["guardian"]["verified"] is True
    assert me["guardian"]["phone_masked"] == guardian[:3] + "****" + guardian[-4:]
    # The same student of the same school cannot register twice.
    again = api.post(
        "/api/v1/accounts/by-student-number",
        json={**body, "code": codes("guardian_check", guardian)},
    )
    assert again.status_code == 409
    assert again.json()["code"] == "student_number_registered"


def test_change_email_and_security_questions(api, student, codes, platform):
    me = student()
    address = f"new{uuid.uuid4().hex[:8]}@school.edu.cn"
    bad_password = api.put(
        "/api/v1/me/email",
        json={"password": "not my password", "new_email": address, "code": "123456"},
        headers=me["auth"],
    )
    assert bad_password.status_code == 403
    assert bad_password.json()["code"] == "password_incorrect"
    changed = api.put(
        "/api/v1/me/email",
        json={
            "password": me["password"],
            "new_email": address,
            "code": codes("change_email", address),
        },
        headers=me["auth"],
    )
    assert changed.status_code == 200, changed.text
    assert api.get("/api/v1/me", headers=me["auth"]).json()["email_masked"] == (
        "n***@school.edu.cn"
    )

    questions = [
        {"question": "我的小学名称？", "answer": "北京 实验 小学"},
        {"question": "我最喜欢的老师？", "answer": "王老師"},
        {"question": "我的第一只宠物？", "answer": "Lucky!"},
    ]
    duplicate = api.put(
        "/api/v1/me/security-questions",
        json={"password": me["password"], "questions": [questions[0]] * 3},
        headers=me["auth"],
    )
    assert duplicate.status_code == 422
    assert duplicate.json()["code"] == "questions_invalid"
    stored = api.put(
        "/api/v1/me/security-questions",
        json={"password": me["password"], "questions": questions},
        headers=me["auth"],
    )
    assert stored.status_code == 200, stored.text
    assert api.get("/api/v1/me", headers=me["auth"]).json()["security_questions_set"]
    # Stored as argon2id hashes of the normalised answers, never as typed.
    conn = psycopg2.connect(platform.env["IDENTITY_DB_URI"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT security_questions::text, email, id_number_hash, phone"
                " FROM accounts WHERE id = %s",
                (me["account_id"],),
            )
            questions_json, email, id_hash, e164_phone = cur.fetchone()
            cur.execute(
                "SELECT action, actor, detail::text FROM audit_log"
                " WHERE account_id = %s ORDER BY id",
                (me["account_id"],),
            )
            audit_rows = cur.fetchall()
    finally:
        conn.close()
    assert email == address
    assert questions_json.count("$argon2id$") == 3
    for raw in ("北京", "王老", "lucky", "Lucky"):
        assert raw not in questions_json
    # Both changes are on the record, by the account itself ...
    actions = [action for action, _, _ in audit_rows]
    assert actions.count("email_changed") == 1, actions
    assert actions.count("security_questions_set") == 1, actions
    assert all(
        actor == me["account_id"]
        for action, actor, _ in audit_rows
        if action in ("email_changed", "security_questions_set")
    )
    # ... and no audit row holds personal data in any form: plain, either
    # case of the check character, E.164, or the keyed lookup hash.
    audit = " ".join(" ".join(row) for row in audit_rows)
    for secret in (
        address,
        me["phone"],
        e164_phone,
        me["id_number"],
        me["id_number"].lower(),
        id_hash,
        me["password"],
    ):
        assert secret and secret not in audit, secret


def test_guardian_phone_only_for_children(api, student, codes):
    adult = student()
    refused = api.post(
        "/api/v1/me/guardian",
        json={"guardian_phone": random_phone("138"), "code": "123456"},
        headers=adult["auth"],
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "guardian_not_needed"

    child = student(year=datetime.now().year - 10)
    profile = api.get("/api/v1/me", headers=child["auth"]).json()
    assert profile["guardian"] == {
        "required": True,
        "verified": False,
        "phone_masked": None,
    }
    guardian = random_phone("138")
    bound = api.post(
        "/api/v1/me/guardian",
        json={"guardian_phone": guardian, "code": codes("guardian_check", guardian)},
        headers=child["auth"],
    )
    assert bound.status_code == 200, bound.text
    assert api.get("/api/v1/me", headers=child["auth"]).json()["guardian"]["verified"]


def wechat_assertion(key, subject, audience="student-selfservice", **claims):
    now = int(time.time())
    return jwt.encode(
        {
            "iss": "https://open.weixin.qq.com",
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            **claims,
        },
        key,
        algorithm="RS256",
    )


def test_link_log_in_with_and_unlink_a_wechat_identity(api, student, wechat_key):
    me = student()
    subject = "wx-" + uuid.uuid4().hex
    linked = api.post(
        "/api/v1/me/links",
        json={"provider": "wechat", "assertion": wechat_assertion(wechat_key, subject)},
        headers=me["auth"],
    )
    assert linked.status_code == 201, linked.text
    assert api.get("/api/v1/me", headers=me["auth"]).json()["linked_providers"] == [
        "wechat"
    ]
    session = api.post(
        "/api/v1/sessions",
        json={"provider": "wechat", "assertion": wechat_assertion(wechat_key, subject)},
        headers={"X-Device-Id": me["device"]},
    )
    assert session.status_code == 201, session.text
    assert session.json()["account_id"] == me["account_id"]

    # Forged (another key), expired, or for another audience: refused.
    from cryptography.hazmat.primitives.asymmetric import rsa

    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        wechat_assertion(forger, subject),
        wechat_assertion(wechat_key, subject, exp=int(time.time()) - 3600),
        wechat_assertion(wechat_key, subject, audience="someone-else"),
    ):
        refused = api.post(
            "/api/v1/sessions",
            json={"provider": "wechat", "assertion": bad},
            headers={"X-Device-Id": me["device"]},
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "assertion_invalid"
    # Another account cannot take the same WeChat identity.
    other = student()
    taken = api.post(
        "/api/v1/me/links",
        json={"provider": "wechat", "assertion": wechat_assertion(wechat_key, subject)},
        headers=other["auth"],
    )
    assert taken.status_code == 409 and taken.json()["code"] == "link_taken"
    # Alipay has no key configured in this run: off.
    off = api.post(
        "/api/v1/me/links",
        json={"provider": "alipay", "assertion": wechat_assertion(wechat_key, subject)},
        headers=me["auth"],
    )
    assert off.status_code == 422 and off.json()["code"] == "provider_unknown"

    unlinked = api.delete("/api/v1/me/links/wechat", headers=me["auth"])
    assert unlinked.status_code == 200 and unlinked.json()["linked"] is False
    after = api.post(
        "/api/v1/sessions",
        json={"provider": "wechat", "assertion": wechat_assertion(wechat_key, subject)},
        headers={"X-Device-Id": me["device"]},
    )
    assert after.status_code == 404 and after.json()["code"] == "link_not_found"
    assert api.delete("/api/v1/me/links/wechat", headers=me["auth"]).status_code == 404
