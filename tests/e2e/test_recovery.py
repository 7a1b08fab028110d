"""Recovery over HTTP (issue #10): forgot phone by two classmates' vouching,
every guard refused with its own code, "not me", password reset by each
method, duplicate-ID resolution by photo review and by a classmate's
assistance, the inbox; answers that must not tell who exists."""

import re
import statistics
import time
import uuid

import pytest

from services.common.plumbing.testing import random_phone, wait_until
from tests.e2e.recovery_steps import NEW_PASSWORD, from_ip, start, to_awaiting

PASSWORD = "a long enough secret"


def try_old_phone(api, flow, old_phone):
    """Step 2 with ``old_phone`` and an arbitrary code: what the old-phone
    check answers (it is judged before the code)."""
    return api.post(
        f"/api/v1/phone-recoveries/{flow['recovery_id']}/new-phone",
        json={
            "old_phone": old_phone,
            "new_phone": random_phone("139"),
            "code": "123456",
            "new_password": NEW_PASSWORD,
        },
        headers={"X-Recovery-Token": flow["recovery_token"]},
    )


def vouch(api, voucher, share):
    return api.post(f"/api/v1/vouches/{share}", headers=voucher["auth"])


def refused_reason(answer):
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "not_eligible_voucher"
    return answer.json()["reason"]


def login(api, login_name, password, device):
    return api.post(
        "/api/v1/sessions",
        json={"login": login_name, "password": password},
        headers={"X-Device-Id": device},
    )


# -- forgot phone --------------------------------------------------------------------
def test_forgot_phone_by_two_classmates_then_not_me(
    api, codes, inbox, school, enrolled, staff
):
    requester = enrolled(school, name="张小红", email=f"zxh{uuid.uuid4().hex[:6]}@x.cn")
    v1, v2, v3 = (enrolled(school, name=n) for n in ("李一", "李二", "李三"))
    started = start(api, school[0], requester["student_number"], "张小红")
    assert started.status_code == 201, started.text
    flow = started.json()
    assert (
        flow["old_phone_hint"]
        == requester["phone"][:3] + "****" + requester["phone"][-2:]
    )
    rid, rt = flow["recovery_id"], {"X-Recovery-Token": flow["recovery_token"]}

    # The old phone typed wrong: its own code, attempts counted down.
    new_phone = random_phone("139")
    wrong = api.post(
        f"/api/v1/phone-recoveries/{rid}/new-phone",
        json={
            "old_phone": random_phone(),
            "new_phone": new_phone,
            "code": "000000",
            "new_password": NEW_PASSWORD,
        },  # fmt: skip
        headers=rt,
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "old_phone_mismatch"
    assert wrong.json()["attempts_left"] == 4
    # Step 3 before step 2: there is no share link to vouch with yet.
    assert api.get(f"/api/v1/phone-recoveries/{rid}", headers=rt).json()["status"] == (
        "matched"
    )
    set_phone = api.post(
        f"/api/v1/phone-recoveries/{rid}/new-phone",
        json={
            "old_phone": requester["phone"],
            "new_phone": new_phone,
            "code": codes("recover_phone", new_phone),
            "new_password": NEW_PASSWORD,
        },  # fmt: skip
        headers=rt,
    )
    assert set_phone.status_code == 200, set_phone.text
    share = set_phone.json()["share_token"]
    assert set_phone.json()["vouches_needed"] == 2
    # Replaying step 2 finds the flow past it.
    replay = api.post(
        f"/api/v1/phone-recoveries/{rid}/new-phone",
        json={
            "old_phone": requester["phone"],
            "new_phone": new_phone,
            "code": "123456",
            "new_password": NEW_PASSWORD,
        },  # fmt: skip
        headers=rt,
    )
    assert (
        replay.status_code == 409 and replay.json()["code"] == "recovery_step_invalid"
    )

    page = api.get(f"/api/v1/vouches/{share}", headers=v1["auth"])
    assert page.status_code == 200, page.text
    shown = page.json()
    assert shown["requester_name"] == "张小红" and shown["requester_class"] == "一班"
    assert shown["new_phone_masked"] == new_phone[:3] + "****" + new_phone[-4:]
    assert shown["warning_zh"] and shown["vouches"] == 0 and not shown["is_requester"]

    first = vouch(api, v1, share)
    assert first.status_code == 200 and first.json()["vouches"] == 1
    assert first.json()["status"] == "awaiting_vouches"
    assert refused_reason(vouch(api, v1, share)) == "already_vouched"
    assert refused_reason(vouch(api, requester, share)) == "self"
    sms_before = len(inbox.messages(new_phone))
    second = vouch(api, v2, share)
    assert second.json() == {"recovery_id": rid, "vouches": 2, "vouches_needed": 2,
                             "status": "completed"}  # fmt: skip
    third = vouch(api, v3, share)
    assert third.status_code == 409 and third.json()["code"] == "recovery_step_invalid"

    # identity applied it: the new phone hears, sessions ended, new login works.
    told = inbox.wait_for_new(new_phone, sms_before)
    assert "两位同学已为您助力" in told["body"]
    wait_until(lambda: api.get("/api/v1/me", headers=requester["auth"]).status_code == 401,
               message="the requester's sessions end")  # fmt: skip
    device = "dev-" + uuid.uuid4().hex
    assert login(api, requester["phone"], PASSWORD, device).status_code == 401
    challenge = login(api, new_phone, NEW_PASSWORD, device)
    assert challenge.status_code == 403  # a new device: a code to the new phone
    assert challenge.json()["code"] == "device_verification_required"
    progress = api.get(f"/api/v1/phone-recoveries/{rid}", headers=rt).json()
    assert progress["status"] == "completed" and progress["vouches"] == 2

    # The email (bound before) got the "not me" link; it takes the account back.
    mail = wait_until(lambda: [m for m in inbox.messages(requester["email"])
                               if "/not-me/" in m["body"]], message="not-me notice")  # fmt: skip
    token = re.search(r"/not-me/([A-Za-z0-9_-]+)", mail[0]["body"]).group(1)
    assert new_phone[-4:] in mail[0]["body"] and new_phone not in mail[0]["body"]
    tampered = api.post(f"/api/v1/not-me/{token[:-2]}AA")
    assert (
        tampered.status_code == 404 and tampered.json()["code"] == "share_link_invalid"
    )
    undone = api.post(f"/api/v1/not-me/{token}")
    assert undone.status_code == 200 and undone.json()["status"] == "reverted"
    assert api.post(f"/api/v1/not-me/{token}").json()["status"] == "reverted"

    def locked():
        answer = login(api, requester["phone"], PASSWORD, requester["device"])
        return answer.status_code == 403 and answer.json()["code"] == "account_locked"

    wait_until(locked, message="the account locked with its old phone back")
    assert login(api, new_phone, NEW_PASSWORD, device).status_code == 401
    reviewer = staff("reviewer")
    queue = api.get(
        "/api/v1/admin/reviews?status=open", headers=reviewer["auth"]
    ).json()
    dispute = [r for r in queue["items"] if r["account_id"] == requester["account_id"]]
    assert dispute and dispute[0]["kind"] == "recovery_dispute"
    decided = api.post(
        f"/api/v1/admin/reviews/{dispute[0]['review_id']}/decision",
        json={"approve": True, "reason": "本人来电确认"},
        headers=reviewer["auth"],
    )
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    wait_until(lambda: login(api, requester["phone"], PASSWORD,
                             requester["device"]).status_code == 201,
               message="unlocked after the review")  # fmt: skip


def test_identity_match_answers_alike_for_each_wrong_field_and_for_nobody(
    api, school, enrolled
):
    who = enrolled(school, name="赵敏", aged=False)
    asks = {
        "right": (who["school_code"], who["student_number"], "赵敏"),
        "wrong name": (who["school_code"], who["student_number"], "赵明"),
        "wrong number": (who["school_code"], who["student_number"] + "9", "赵敏"),
        "wrong school": ("TNOSUCH1", who["student_number"], "赵敏"),
        "nobody": ("TNOSUCH2", "000", "无名氏"),
    }
    answers = {label: start(api, *ask) for label, ask in asks.items()}
    for label, answer in answers.items():
        assert answer.status_code == 201, (label, answer.text)
        assert set(answer.json()) == {"recovery_id", "recovery_token", "old_phone_hint",
                                      "expires_at"}, label  # fmt: skip
        assert re.fullmatch(r"1\d\d\*{4}\d\d", answer.json()["old_phone_hint"]), label
    # A decoy agrees with itself when asked again, and fails at the old phone
    # exactly like a wrong guess — even given the real holder's phone.
    again = start(api, *asks["wrong name"])
    assert (
        again.json()["old_phone_hint"] == answers["wrong name"].json()["old_phone_hint"]
    )
    decoy = answers["wrong name"].json()
    tried = try_old_phone(api, decoy, who["phone"])
    assert tried.status_code == 422 and tried.json()["code"] == "old_phone_mismatch"
    assert tried.json()["attempts_left"] == 4


def test_match_throttled_per_target(api, school):
    code = school[0]
    limit = 25  # RECOVERY_MATCH_TARGET_LIMIT in the e2e platform
    for _ in range(limit):
        assert start(api, code, "T-1", "某某").status_code == 201
    over = start(api, code, "T-1", "某某")
    assert over.status_code == 429 and over.json()["code"] == "too_frequent"
    assert int(over.headers["Retry-After"]) > 0


def test_flow_tokens_links_and_cancel(api, codes, school, enrolled):
    who = enrolled(school, name="钱多多", aged=False)
    mate = enrolled(school, name="钱少少")
    flow, share, _ = to_awaiting(api, codes, who)
    rid = flow["recovery_id"]
    wrong_token = api.get(f"/api/v1/phone-recoveries/{rid}",
                          headers={"X-Recovery-Token": "x" * 43})  # fmt: skip
    assert wrong_token.status_code == 404 and wrong_token.json()["code"] == (
        "recovery_not_found"
    )
    missing = api.get(f"/api/v1/phone-recoveries/{rid}")
    assert missing.status_code == 400
    assert missing.json()["code"] == "recovery_token_required"
    flipped = share[:10] + ("A" if share[10] != "A" else "B") + share[11:]
    assert vouch(api, mate, flipped).json()["code"] == "share_link_invalid"
    forged = api.post("/api/v1/vouches/" + "A" * 70, headers=mate["auth"])
    assert forged.status_code == 404
    # A second start while this flow holds proof: the same answer (nothing
    # tells a flow exists), but a shadow that never passes the old phone.
    second = start(api, who["school_code"], who["student_number"], "钱多多")
    assert second.status_code == 201
    assert second.json()["old_phone_hint"] == flow["old_phone_hint"]
    shadow = try_old_phone(api, second.json(), who["phone"])
    assert shadow.status_code == 422 and shadow.json()["code"] == "old_phone_mismatch"
    assert vouch(api, mate, share).status_code == 200  # the first flow lives on
    cancelled = api.post(f"/api/v1/phone-recoveries/{rid}/cancel",
                         headers={"X-Recovery-Token": flow["recovery_token"]})  # fmt: skip
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert vouch(api, mate, share).json()["code"] == "share_link_invalid"
    assert (
        start(api, who["school_code"], who["student_number"], "钱多多").status_code
        == 201
    )


def test_voucher_guards(api, codes, school, onboard, enrolled, service_sql, age):
    requester = enrolled(school, class_name="二班", name="孙悟空", aged=False)
    _, share, _ = to_awaiting(api, codes, requester)
    other_class = enrolled(school, class_name="三班", name="猪八戒")
    other_school = enrolled(onboard(), class_name="二班", name="沙和尚")
    new_account = enrolled(school, class_name="二班", name="白龙马", aged=False)
    age(new_account["account_id"], account=False)
    new_verified = enrolled(school, class_name="二班", name="红孩儿", aged=False)
    age(new_verified["account_id"], verification=False)
    capped_day = enrolled(school, class_name="二班", name="唐三藏")
    capped_term = enrolled(school, class_name="二班", name="观世音")
    unverified = enrolled(school, class_name="二班", name="牛魔王")
    service_sql("registry_sync", "UPDATE verifications SET status = 'failed' "
                "WHERE account_id = %s", (unverified["account_id"],))  # fmt: skip
    for who, subject, cap in (
        (capped_day, "vouch-day", 10),
        (capped_term, "vouch-term", 10),
    ):
        period = (
            time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
            if subject == "vouch-day"
            else (
                "2026-autumn"
                if time.gmtime().tm_mon in (8, 9, 10, 11, 12, 1)
                else "2026-spring"
            )  # fmt: skip
        )
        service_sql("recovery", "INSERT INTO counters (subject, period, count) "
                    "VALUES (%s, %s, %s)", (f"{subject}:{who['account_id']}", period, cap))  # fmt: skip
    assert refused_reason(vouch(api, other_class, share)) == "other_class"
    assert refused_reason(vouch(api, other_school, share)) == "other_school"
    assert refused_reason(vouch(api, new_account, share)) == "recently_created"
    assert refused_reason(vouch(api, new_verified, share)) == "recently_verified"
    assert refused_reason(vouch(api, unverified, share)) == "voucher_not_verified"
    assert refused_reason(vouch(api, capped_day, share)) == "daily_cap"
    assert refused_reason(vouch(api, capped_term, share)) == "term_cap"
    # None of those counted: the flow still has no vouch.
    assert (
        api.get(f"/api/v1/vouches/{share}", headers=other_class["auth"]).json()[
            "vouches"
        ]
        == 0
    )


def test_expired_flow_frees_the_account(api, codes, school, enrolled, service_sql):
    who = enrolled(school, name="周芷若", aged=False)
    mate = enrolled(school, name="周伯通")
    flow, share, _ = to_awaiting(api, codes, who)
    service_sql("recovery", "UPDATE phone_recoveries SET expires_at = now() - interval "
                "'1 second' WHERE id = %s", (flow["recovery_id"],))  # fmt: skip
    late = vouch(api, mate, share)
    assert late.status_code == 409 and late.json()["code"] == "recovery_expired"
    progress = api.get(f"/api/v1/phone-recoveries/{flow['recovery_id']}",
                       headers={"X-Recovery-Token": flow["recovery_token"]}).json()  # fmt: skip
    assert progress["status"] == "expired"
    again = start(api, who["school_code"], who["student_number"], "周芷若")
    assert again.status_code == 201, again.text


# -- password reset --------------------------------------------------------------------
def test_password_reset_by_sms_ends_sessions_and_is_announced(api, inbox, student):
    who = student(name="吴用", email=f"wy{uuid.uuid4().hex[:6]}@x.cn")
    methods = api.get("/api/v1/password-resets/methods", params={"login": who["phone"]})
    assert methods.status_code == 200
    listed = {m["method"]: m for m in methods.json()["methods"]}
    assert set(listed) == {"sms", "email"}
    assert listed["sms"]["target"] == who["phone"][:3] + "****" + who["phone"][-4:]
    before = len(inbox.messages(who["phone"]))
    # The register code went to this phone a moment ago: past its cooldown
    # (1 s on the e2e platform) the reset code is sent.
    time.sleep(1.2)
    sent = api.post("/api/v1/password-resets/codes",
                    json={"login": who["email"], "method": "sms"}, headers=from_ip())  # fmt: skip
    assert sent.status_code == 202, sent.text
    assert sent.json()["target"] == listed["sms"]["target"]
    code = inbox.code(who["phone"], before)
    too_short = api.post(
        "/api/v1/password-resets",
        json={
            "login": who["email"],
            "method": "sms",
            "code": code,
            "new_password": "short",
        },
    )
    assert too_short.status_code == 400
    common = api.post(
        "/api/v1/password-resets",
        json={
            "login": who["email"],
            "method": "sms",
            "code": code,
            "new_password": "password123",
        },
    )
    assert common.status_code == 422 and common.json()["code"] == "password_too_common"
    mails = len(inbox.messages(who["email"]))
    done = api.post("/api/v1/password-resets", json={
        "login": who["email"], "method": "sms", "code": code, "new_password": NEW_PASSWORD},
        headers=from_ip())  # fmt: skip
    assert done.status_code == 200, done.text
    assert done.json() == {"reset": True, "logged_in": False}
    assert api.get("/api/v1/me", headers=who["auth"]).status_code == 401
    assert login(api, who["phone"], PASSWORD, who["device"]).status_code == 401
    assert login(api, who["phone"], NEW_PASSWORD, who["device"]).status_code == 201
    notice = inbox.wait_for_new(who["email"], mails)
    assert "密码已重置" in notice["body"]
    reused = api.post(
        "/api/v1/password-resets",
        json={
            "login": who["email"],
            "method": "sms",
            "code": code,
            "new_password": NEW_PASSWORD,
        },
    )
    assert reused.status_code == 422


QUESTIONS = ("出生地？", "最喜欢的颜色？", "最喜欢的科目？")


def set_questions(api, who, answers):
    pairs = zip(QUESTIONS, answers, strict=True)
    setq = api.put(
        "/api/v1/me/security-questions",
        json={
            "password": PASSWORD,
            "questions": [{"question": q, "answer": a} for q, a in pairs],
        },  # fmt: skip
        headers=who["auth"],
    )
    assert setq.status_code == 200, setq.text


def test_password_reset_by_security_questions_locks_after_three(api, student):
    who = student(name="林冲")
    answers = ["北京", "红色", "数学"]
    set_questions(api, who, answers)
    listed = api.get("/api/v1/password-resets/methods", params={"login": who["phone"]})
    questions = [m for m in listed.json()["methods"] if m["method"] == "questions"]
    assert questions and questions[0]["questions"][0] == "出生地?"  # NFKC-normalised
    body = {"login": who["phone"], "method": "questions", "new_password": NEW_PASSWORD}
    for _ in range(3):
        wrong = api.post(
            "/api/v1/password-resets", json={**body, "answers": ["a", "b", "c"]}
        )
        assert wrong.status_code == 422 and wrong.json()["code"] == "answers_incorrect"
    locked = api.post("/api/v1/password-resets", json={**body, "answers": answers})
    assert locked.status_code == 429 and locked.json()["code"] == "method_locked"

    other = student(name="鲁智深")
    set_questions(api, other, answers)
    ok = api.post("/api/v1/password-resets", json={
        "login": other["phone"], "method": "questions", "answers": [" 北京", "紅色", "数学"],
        "new_password": NEW_PASSWORD})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert api.get("/api/v1/me", headers=other["auth"]).status_code == 401


def test_reset_answers_alike_for_unknown_logins(api):
    unknown = f"nobody{uuid.uuid4().hex[:8]}@x.cn"
    first = api.get("/api/v1/password-resets/methods", params={"login": unknown}).json()
    assert (
        first
        == api.get("/api/v1/password-resets/methods", params={"login": unknown}).json()
    )
    assert {"method": "email", "target": unknown[0] + "***@x.cn"} in first["methods"]
    assert first["alternatives"]["forgot_phone"] == "/api/v1/phone-recoveries"
    sent = api.post("/api/v1/password-resets/codes",
                    json={"login": unknown, "method": "email"}, headers=from_ip())  # fmt: skip
    assert sent.status_code == 202 and sent.json()["target"] == unknown[0] + "***@x.cn"
    again = api.post("/api/v1/password-resets/codes",
                     json={"login": unknown, "method": "email"}, headers=from_ip())  # fmt: skip
    assert again.status_code == 429 and again.json()["code"] == "resend_too_soon"
    reset = api.post(
        "/api/v1/password-resets",
        json={
            "login": unknown,
            "method": "email",
            "code": "123456",
            "new_password": NEW_PASSWORD,
        },
    )
    assert reset.status_code == 422 and reset.json()["code"] == "code_invalid"


def test_enumeration_timing_is_within_noise(api, student, school, enrolled):
    """Median times of known and unknown asks, 25 samples each, interleaved."""
    who = enrolled(school, name="包拯", aged=False)
    known_login = who["phone"]
    samples = {"methods-known": [], "methods-unknown": [], "match-known": [],
               "match-unknown": []}  # fmt: skip

    def timed(key, call):
        started = time.perf_counter()
        answer = call()
        samples[key].append(time.perf_counter() - started)
        return answer

    for i in range(20):
        assert timed(
            "methods-known",
            lambda: api.get(
                "/api/v1/password-resets/methods", params={"login": known_login}
            ),
        ).ok
        assert timed("methods-unknown", lambda: api.get(
            "/api/v1/password-resets/methods",
            params={"login": random_phone("135")})).ok  # fmt: skip
        assert (
            timed(
                "match-known",
                lambda: start(api, who["school_code"], who["student_number"], "包拯"),
            ).status_code
            == 201
        )
        assert (
            timed(
                "match-unknown",
                lambda i=i: start(
                    api, who["school_code"], who["student_number"] + f"x{i}", "包拯"
                ),
            ).status_code
            == 201
        )
    # The reset start (a code request): every known login sends a real code
    # and may ask only five times a day, so one account per sample.
    known_logins = [student(name="公孙策", login=False)["phone"] for _ in range(8)]
    time.sleep(1.2)  # past the register code's cooldown (1 s here)
    samples.update({"codes-known": [], "codes-unknown": []})
    for known in known_logins:
        for key, login_name in (("codes-known", known),
                                ("codes-unknown", random_phone("135"))):  # fmt: skip
            answer = timed(key, lambda login_name=login_name: api.post(
                "/api/v1/password-resets/codes",
                json={"login": login_name, "method": "sms"}, headers=from_ip()))  # fmt: skip
            assert answer.status_code == 202, answer.text
            assert set(answer.json()) == {"method", "target", "resend_after"}
    medians = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    print("enumeration timing (ms):", medians)
    assert abs(medians["methods-known"] - medians["methods-unknown"]) < 25, medians
    assert abs(medians["match-known"] - medians["match-unknown"]) < 25, medians
    assert abs(medians["codes-known"] - medians["codes-unknown"]) < 25, medians


# -- concurrency -------------------------------------------------------------------
@pytest.fixture
def second_recovery(platform):
    """A second recovery instance on the same queues (competing consumers)."""
    platform.start_service("recovery", instance=2)
    log = platform.log_dir / "recovery-2.log"
    wait_until(lambda: log.exists() and "Connected to" in log.read_text(errors="replace"),
               timeout=30, message="the second recovery instance")  # fmt: skip
    yield platform
    platform.stop_service("recovery-2")


def test_two_vouches_at_once_over_two_instances_complete_once(
    api, codes, inbox, school, enrolled, service_sql, second_recovery, platform
):
    """The last two vouches of a flow arrive together, on two instances:
    exactly one completes it, one hand-over is applied, one notice set."""
    import threading

    vouchers = [enrolled(school, name=n) for n in ("甲一", "乙二", "丙三")]
    rounds = 4
    for round_no in range(rounds):
        requester = enrolled(school, name="丁四", aged=False)
        flow, share, new_phone = to_awaiting(api, codes, requester)
        assert vouch(api, vouchers[0], share).json()["vouches"] == 1
        barrier = threading.Barrier(2)
        answers = [None, None]

        def go(slot, who, share=share, barrier=barrier, answers=answers):
            barrier.wait()
            answers[slot] = vouch(api, who, share)

        threads = [threading.Thread(target=go, args=(i, v))
                   for i, v in enumerate(vouchers[1:])]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = sorted(a.status_code for a in answers)
        completed = [a for a in answers if a.status_code == 200]
        assert statuses == [200, 409], [a.text for a in answers]
        assert completed[0].json()["status"] == "completed"
        loser = [a for a in answers if a.status_code == 409][0]
        assert loser.json()["code"] == "recovery_step_invalid"
        rid = flow["recovery_id"]
        wait_until(lambda rid=rid: service_sql(
            "identity", "SELECT 1 FROM account_recoveries WHERE recovery_id = %s", (rid,)),
            message="identity applied the hand-over")  # fmt: skip
        time.sleep(0.5)  # room for a second (wrong) hand-over or notice
        vouches = service_sql("recovery", "SELECT count(*) AS n FROM vouches "
                              "WHERE recovery_id = %s", (rid,))[0]["n"]  # fmt: skip
        applied = service_sql("identity", "SELECT count(*) AS n FROM account_recoveries "
                              "WHERE account_id = %s", (requester["account_id"],))[0]["n"]  # fmt: skip
        notices = service_sql("identity", "SELECT count(*) AS n FROM notices WHERE "
                              "account_id = %s AND kind = 'phone_recovered'",
                              (requester["account_id"],))[0]["n"]  # fmt: skip
        assert (vouches, applied, notices) == (2, 1, 1), round_no
        told = wait_until(lambda p=new_phone: [m for m in inbox.messages(p)
                                              if "两位同学" in m["body"]],
                          message="the SMS to the new phone")  # fmt: skip
        assert len(told) == 1
    logs = {
        name: (platform.log_dir / f"{name}.log").read_text(errors="replace")
        for name in ("recovery", "recovery-2")
    }
    for name, text in logs.items():  # each instance answered vouches (ok or refused)
        assert re.search(r"recovery\.vouch (ok|refused)", text), (
            f"{name} served no vouch"
        )


def test_classmates_invited_by_number_vouch_from_their_inbox(
    api, codes, school, enrolled, service_sql
):
    requester = enrolled(school, class_name="四班", name="杨过", aged=False)
    mate = enrolled(school, class_name="四班", name="小龙女")
    declines = enrolled(school, class_name="四班", name="郭靖")
    elsewhere = enrolled(school, class_name="五班", name="黄蓉")
    flow, share, _ = to_awaiting(api, codes, requester)
    rt = {"X-Recovery-Token": flow["recovery_token"]}
    numbers = [mate["student_number"], declines["student_number"],
               elsewhere["student_number"], "NO-SUCH-NUMBER"]  # fmt: skip
    invited = api.post(f"/api/v1/phone-recoveries/{flow['recovery_id']}/invitations",
                       json={"student_numbers": numbers}, headers=rt)  # fmt: skip
    assert invited.status_code == 202, invited.text
    assert invited.json()["asked"] == 4  # which numbers were found is not told

    def request_of(who):
        box = api.get("/api/v1/me/inbox", headers=who["auth"]).json()
        found = [m for m in box["items"] if m["kind"] == "vouch_request"]
        assert found and found[0]["params"]["requester_name"] == "杨过", box
        return found[0]["message_id"]

    def answer(who, approve):
        return api.post(f"/api/v1/me/inbox/{request_of(who)}/answer",
                        json={"approve": approve}, headers=who["auth"])  # fmt: skip

    refused = answer(elsewhere, True)
    assert refused.status_code == 403 and refused.json()["reason"] == "other_class"
    assert (
        api.get("/api/v1/me/inbox", headers=elsewhere["auth"]).json()["to_answer"] == 1
    )
    assert answer(declines, False).status_code == 200
    assert answer(mate, True).json()["answer"] is True
    progress = api.get(f"/api/v1/phone-recoveries/{flow['recovery_id']}", headers=rt)
    assert progress.json()["vouches"] == 1
    # The share link and the inbox are one flow: the same classmate cannot
    # vouch twice by using both.
    assert refused_reason(vouch(api, mate, share)) == "already_vouched"
    last = enrolled(school, class_name="四班", name="周伯通")
    assert vouch(api, last, share).json()["status"] == "completed"
    outcome = service_sql(
        "recovery",
        "SELECT count(*) AS n FROM inbox_messages WHERE account_id = %s "
        "AND kind = 'phone_recovery_outcome'",
        (requester["account_id"],),
    )
    assert outcome[0]["n"] == 1
    # Nothing the recovery keeps is a token or a number in the clear.
    dump = service_sql(
        "recovery",
        "SELECT (SELECT string_agg(r::text, ' ') FROM phone_recoveries r) AS flows,"
        " (SELECT string_agg(a::text, ' ') FROM audit_log a) AS audit",
    )[0]
    for secret in (share, flow["recovery_token"], requester["phone"], "杨过"):
        assert secret not in dump["flows"] and secret not in dump["audit"], secret


def test_password_reset_by_email_code(api, inbox, student):
    address = f"em{uuid.uuid4().hex[:6]}@x.cn"
    who = student(name="宋江", email=address)
    mails = len(inbox.messages(address))
    sent = api.post("/api/v1/password-resets/codes",
                    json={"login": who["phone"], "method": "email"}, headers=from_ip())  # fmt: skip
    assert sent.status_code == 202 and sent.json()["target"] == "e***@x.cn"
    code = inbox.code(address, mails)
    wrong = api.post(
        "/api/v1/password-resets",
        json={
            "login": who["phone"],
            "method": "sms",
            "code": code,
            "new_password": NEW_PASSWORD,
        },
    )
    assert wrong.status_code == 422  # an email code is not an SMS code
    done = api.post(
        "/api/v1/password-resets",
        json={
            "login": who["phone"],
            "method": "email",
            "code": code,
            "new_password": NEW_PASSWORD,
        },
    )
    assert done.status_code == 200, done.text
    assert login(api, who["phone"], NEW_PASSWORD, who["device"]).status_code == 201
    # A login with no email offers no email method, for a known account as
    # for the decoy of an unknown one.
    bare = student(name="卢俊义")
    nope = api.post("/api/v1/password-resets/codes",
                    json={"login": bare["phone"], "method": "email"}, headers=from_ip())  # fmt: skip
    assert nope.status_code == 422 and nope.json()["code"] == "method_unavailable"
    assert nope.json()["methods"] == ["sms"]
