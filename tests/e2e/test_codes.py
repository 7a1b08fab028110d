"""Verification codes over HTTP, delivered to the capture server the way a
developer running `make run` sees them."""

import base64
import random
import re
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import requests
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.plumbing.testing import wait_until


def random_mobile():
    return f"137{random.randint(0, 99_999_999):08d}"


def code_request(phone, purpose="register"):
    return {"channel": "sms", "destination": phone, "purpose": purpose}


def test_code_is_sent_read_from_the_capture_server_and_verifies(api, platform):
    phone = random_mobile()
    answer = api.post("/api/v1/codes", json=code_request(phone))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["remaining_today"] == 4 and body["resend_after"] == 1
    assert body["destination_masked"] == phone[:3] + "****" + phone[-4:]
    expires = datetime.fromisoformat(body["expires_at"])
    assert (
        timedelta(minutes=29)
        < expires - datetime.now(timezone.utc)
        <= timedelta(minutes=30)
    )

    def messages():
        return requests.get(
            f"{platform.capture_url}/api/messages", params={"to": phone}, timeout=5
        ).json()

    message = wait_until(messages, message="SMS captured")[0]
    assert message["channel"] == "sms"
    code = re.search(r"验证码：(\d{6})", message["body"]).group(1)
    # The flows that consume codes (registration, …) call this RPC.
    with ServiceRpcProxy("verification", {"AMQP_URI": platform.env["AMQP_URI"]}) as rpc:
        verified = rpc.check_code(
            {"destination": "+86" + phone, "purpose": "register", "code": code}
        )
    assert verified["verified"] is True


def test_sixth_send_of_the_day_is_refused_until_beijing_midnight(api):
    phone = random_mobile()
    assert api.post("/api/v1/codes", json=code_request(phone)).status_code == 202
    too_soon = api.post("/api/v1/codes", json=code_request(phone))
    assert too_soon.status_code == 429
    assert too_soon.json()["code"] == "resend_too_soon"
    assert too_soon.headers["Retry-After"] == "1"
    for _ in range(4):
        time.sleep(1.1)
        assert api.post("/api/v1/codes", json=code_request(phone)).status_code == 202
    time.sleep(1.1)
    sixth = api.post("/api/v1/codes", json=code_request(phone))
    assert sixth.status_code == 429
    assert sixth.headers["Content-Type"].startswith("application/problem+json")
    problem = sixth.json()
    assert problem["code"] == "daily_limit_reached"
    assert "每日5次" in problem["detail"]
    beijing = ZoneInfo("Asia/Shanghai")
    midnight = datetime.combine(
        datetime.now(beijing).date() + timedelta(days=1),
        datetime.min.time(),
        tzinfo=beijing,
    )
    assert datetime.fromisoformat(problem["resets_at"]) == midnight
    assert int(sixth.headers["Retry-After"]) > 0


def test_bad_input_is_refused_with_the_rule_that_failed(api):
    bad_phone = api.post("/api/v1/codes", json=code_request("12345"))
    assert bad_phone.status_code == 400 and bad_phone.json()["code"] == "phone_invalid"
    bad_purpose = api.post("/api/v1/codes", json=code_request(random_mobile(), "hack"))
    assert bad_purpose.status_code == 400
    assert "purpose" in bad_purpose.json()["errors"]
    not_json = api.post(
        "/api/v1/codes", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["code"] == "invalid_json"
    english = api.post(
        "/api/v1/codes", json=code_request("12345"), headers={"Accept-Language": "en"}
    )
    assert english.json()["detail"].startswith("Not a valid mainland China mobile")


def test_captcha_is_a_png_with_an_expiry(api):
    answer = api.post("/api/v1/captchas")
    assert answer.status_code == 201
    body = answer.json()
    assert base64.b64decode(body["image_png_base64"]).startswith(b"\x89PNG")
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(timezone.utc)
