"""Logging in over HTTP: any login name, new devices need a code sent to the
bound phone, throttling, logout and revocation reaching the gateway's cache."""

import time
import uuid

from nameko.standalone.rpc import ClusterRpcProxy

from services.common.plumbing.testing import wait_until


def challenge(api, credentials, device):
    """Log in from an unproved device until the code is sent (the phone's
    resend cooldown may still run from the registration code)."""
    for _ in range(10):
        answer = api.post("/api/v1/sessions", json=credentials, headers=device)
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "device_verification_required"
        if answer.json()["code_sent"]:
            return answer.json()
        assert answer.json()["code_refusal"] == "resend_too_soon"
        time.sleep(answer.json()["retry_after"])
    raise AssertionError("no login_new_device code was sent")


def test_register_login_new_device_then_change_phone(api, student, inbox, codes):
    me = student()
    profile = api.get("/api/v1/me", headers=me["auth"])
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["passport_id"] == me["passport_id"]
    assert body["phone_masked"] == me["phone"][:3] + "****" + me["phone"][-4:]
    assert body["id_number_masked"].startswith(me["id_number"][:3])
    assert me["id_number"] not in profile.text and me["phone"] not in profile.text

    # A device the account has not proved: a code goes to the bound phone.
    new_device = {"X-Device-Id": "tablet-" + uuid.uuid4().hex}
    credentials = {"login": me["phone"], "password": me["password"]}
    before = len(inbox.messages(me["phone"]))
    challenged = challenge(api, credentials, new_device)
    assert challenged["phone_masked"] == body["phone_masked"]
    code = inbox.code(me["phone"], before)
    wrong = "000000" if code != "000000" else "111111"
    refused = api.post(
        "/api/v1/sessions", json={**credentials, "code": wrong}, headers=new_device
    )
    assert refused.status_code == 422 and refused.json()["code"] == "code_invalid"
    session = api.post(
        "/api/v1/sessions", json={**credentials, "code": code}, headers=new_device
    )
    assert session.status_code == 201, session.text
    # Proved once: the next login from it needs no code.
    again = api.post("/api/v1/sessions", json=credentials, headers=new_device)
    assert again.status_code == 201, again.text
    tablet = {"Authorization": f"Bearer {again.json()['token']}", **new_device}

    # Change the phone from the new device: password + code to the new phone.
    new_phone = "139" + me["phone"][3:]
    changed = api.put(
        "/api/v1/me/phone",
        json={
            "password": me["password"],
            "new_phone": new_phone,
            "code": codes("change_phone", new_phone),
        },
        headers=tablet,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["phone_masked"] == new_phone[:3] + "****" + new_phone[-4:]
    # The new phone is a login name now; the old one is not.
    by_new = api.post(
        "/api/v1/sessions",
        json={"login": new_phone, "password": me["password"]},
        headers={"X-Device-Id": me["device"]},
    )
    assert by_new.status_code == 201, by_new.text
    by_old = api.post(
        "/api/v1/sessions", json=credentials, headers={"X-Device-Id": me["device"]}
    )
    assert by_old.status_code == 401 and by_old.json()["code"] == "invalid_credentials"


def test_every_login_name_works(api, student):
    me = student(email=f"s{uuid.uuid4().hex[:8]}@school.edu.cn")
    device = {"X-Device-Id": me["device"]}
    for login in (
        me["phone"],
        "+86" + me["phone"],
        me["email"].upper(),
        me["id_number"].lower(),
        me["passport_id"],
    ):
        answer = api.post(
            "/api/v1/sessions",
            json={"login": login, "password": me["password"]},
            headers=device,
        )
        assert answer.status_code == 201, (login, answer.text)


def test_login_needs_a_device_id_and_right_password(api, student):
    me = student(login=False)
    no_device = api.post(
        "/api/v1/sessions", json={"login": me["phone"], "password": me["password"]}
    )
    assert no_device.status_code == 400
    assert no_device.json()["code"] == "device_id_required"
    wrong = api.post(
        "/api/v1/sessions",
        json={"login": me["phone"], "password": "not the password"},
        headers={"X-Device-Id": me["device"]},
    )
    nobody = api.post(
        "/api/v1/sessions",
        json={"login": "13000000000", "password": "not the password"},
        headers={"X-Device-Id": me["device"]},
    )
    # A wrong password and an unknown login name answer alike.
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json()


def test_failed_logins_slow_down_an_unknown_device_not_a_proved_one(api, student):
    me = student(login=False)
    stranger = {"X-Device-Id": "attacker-" + uuid.uuid4().hex}
    answers = [
        api.post(
            "/api/v1/sessions",
            json={"login": me["phone"], "password": f"guess number {n}"},
            headers=stranger,
        )
        for n in range(6)
    ]
    assert [a.status_code for a in answers[:5]] == [401] * 5
    # The 6th failure started a delay: even the right password waits now...
    blocked = api.post(
        "/api/v1/sessions",
        json={"login": me["phone"], "password": me["password"]},
        headers=stranger,
    )
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["code"] == "login_throttled"
    assert int(blocked.headers["Retry-After"]) >= 1
    # ...but not from the device the owner has proved: no lock-out by strangers.
    owner = api.post(
        "/api/v1/sessions",
        json={"login": me["phone"], "password": me["password"]},
        headers={"X-Device-Id": me["device"]},
    )
    assert owner.status_code == 201, owner.text
    # The delay is short and grows: after it passes, the right password works.
    wait_until(
        lambda: (
            api.post(
                "/api/v1/sessions",
                json={"login": me["phone"], "password": me["password"]},
                headers=stranger,
            ).status_code
            == 403
        ),  # past the throttle, on to the new-device check
        timeout=10,
        interval=0.5,
        message="the login delay to pass",
    )


def test_logout_and_revocation_reach_the_gateway_cache(api, student, platform):
    me = student()
    assert api.get("/api/v1/me", headers=me["auth"]).status_code == 200  # cached now
    assert api.delete("/api/v1/sessions/current", headers=me["auth"]).status_code == 204
    gone = api.get("/api/v1/me", headers=me["auth"])
    assert gone.status_code == 401 and gone.json()["code"] == "invalid_token"

    # Revoked elsewhere (as recovery and password reset do, over RPC): the
    # gateway's cache holds principals for 600 s in this run, so only the
    # sessions_revoked broadcast can make the token fail quickly.
    other = api.post(
        "/api/v1/sessions",
        json={"login": me["phone"], "password": me["password"]},
        headers={"X-Device-Id": me["device"]},
    ).json()
    auth = {"Authorization": f"Bearer {other['token']}", "X-Device-Id": me["device"]}
    assert api.get("/api/v1/me", headers=auth).status_code == 200
    with ClusterRpcProxy({"AMQP_URI": platform.amqp_uri}) as cluster:
        assert cluster.identity.end_all_sessions(me["account_id"], "test")["ended"] >= 1
    wait_until(
        lambda: api.get("/api/v1/me", headers=auth).status_code == 401,
        timeout=5,
        message="the revoked token to be refused",
    )


def test_a_token_only_works_from_its_device(api, student):
    me = student()
    elsewhere = {**me["auth"], "X-Device-Id": "copied-" + uuid.uuid4().hex}
    answer = api.get("/api/v1/me", headers=elsewhere)
    assert answer.status_code == 401 and answer.json()["code"] == "invalid_token"
    assert api.get("/api/v1/me").json()["code"] == "unauthenticated"


def test_a_duplicate_pending_account_is_limited(api, student, codes):
    first = student(login=False)
    phone = "158" + first["phone"][3:]
    device = {"X-Device-Id": "dup-" + uuid.uuid4().hex}
    created = api.post(
        "/api/v1/accounts",
        json={
            "phone": phone,
            "code": codes("register", phone),
            "password": "a long enough secret",
            "name": first["name"],
            "id_type": "resident_id",
            "id_number": first["id_number"],
            "register_anyway": True,
        },
        headers=device,
    )
    assert (
        created.status_code == 201 and created.json()["status"] == "duplicate_pending"
    )
    session = api.post(
        "/api/v1/sessions",
        json={"login": phone, "password": "a long enough secret"},
        headers=device,
    )
    assert session.status_code == 201, session.text
    auth = {"Authorization": f"Bearer {session.json()['token']}", **device}
    assert api.get("/api/v1/me", headers=auth).json()["status"] == "duplicate_pending"
    limited = api.post(
        "/api/v1/me/auth-info",
        json={"code": "123456", "name": "王大明"},
        headers=auth,
    )
    assert limited.status_code == 403 and limited.json()["code"] == "account_limited"
    # The ID number still logs into the active account, not the pending one.
    by_id = api.post(
        "/api/v1/sessions",
        json={"login": first["id_number"], "password": first["password"]},
        headers={"X-Device-Id": first["device"]},
    )
    assert (
        by_id.status_code == 201 and by_id.json()["account_id"] == first["account_id"]
    )


def test_a_login_name_that_cannot_exist_is_refused_like_an_unknown_one(api):
    device = {"X-Device-Id": "dev-" + uuid.uuid4().hex}
    for login in ("not an address@", "12012345678", "x@y"):
        answer = api.post(
            "/api/v1/sessions",
            json={"login": login, "password": "whatever it is"},
            headers=device,
        )
        assert answer.status_code == 401, (login, answer.text)
        assert answer.json()["code"] == "invalid_credentials"
