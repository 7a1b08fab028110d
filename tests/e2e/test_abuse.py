"""The attacks of issue #20, each as an attacker inside a school would try
it (two phones and a class list), through HTTP and, where a service's RPC is
the boundary, over the broker too. One line per test says the attack."""

import re

import pytest
from nameko.exceptions import RemoteError

from services.common.contract.errors import ServiceError
from services.common.rules.realname import resident_check_char
from tests.e2e.test_registry_verification import (
    eventually,
    make_admin,
    push_student,
    verify,
)


def refused_over_rpc(call, *args):
    """The refusal's text of an RPC that must be refused: a RemoteError, or
    the ServiceError itself when nameko can rebuild it in this process."""
    with pytest.raises((RemoteError, ServiceError)) as refused:
        call(*args)
    return f"{type(refused.value).__name__}: {refused.value}"


def other_resident_id(born="20080101"):
    first17 = "110105" + born + "123"
    return first17 + resident_check_char(first17)


# -- §1 registry verification proves the account's own identity -------------------


def test_typing_a_classmates_name_and_number_does_not_pass_as_them(
    api, school, student
):
    """Attack: my own account (own name, own ID) types a classmate's name and
    student number into the verification form to take over their record."""
    code, token = school
    victim = student(name="张三")
    push_student(api, token, "V100", "张三", id_number=victim["id_number"])
    push_student(api, token, "V101", "张三")  # a record without an ID number
    attacker = student(name="李四")
    for number in ("V100", "V101"):
        answer = verify(
            api, attacker, school_code=code, student_number=number, name="张三",
            id_number=victim["id_number"],
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "failed", answer.text
    # ... and the real student is not locked out of the record afterwards.
    mine = verify(api, victim, school_code=code, student_number="V100", name="张三")
    assert mine.json()["status"] == "passed", mine.text


def test_over_rpc_the_typed_name_decides_nothing_either(rpc, api, school, student):
    """Attack: call registry_sync.submit_verification on the bus directly with
    the classmate's name, skipping the gateway."""
    code, token = school
    push_student(api, token, "R200", "王五")
    attacker = student(name="赵六")
    answer = rpc.registry_sync.submit_verification(
        {"account_id": attacker["account_id"], "school_code": code,
         "student_number": "R200", "name": "王五"}
    )  # fmt: skip
    assert (answer["status"], answer["code"]) == ("failed", "name_mismatch")


def test_a_same_named_student_without_the_records_id_number_fails(api, school, student):
    """Attack: register an account under the classmate's exact name (any
    valid-looking ID) and verify against their record, which holds their ID."""
    code, token = school
    push_student(api, token, "N300", "孙七", id_number=other_resident_id())
    namesake = student(name="孙七")
    answer = verify(api, namesake, school_code=code, student_number="N300", name="孙七")
    assert (answer.json()["status"], answer.json()["code"]) == (
        "failed",
        "id_number_mismatch",
    )


def test_a_claimed_record_points_to_the_duplicate_id_path(
    api, school, student, internal_auth
):
    """A record already tied to another account is no dead end: the answer
    names the next step, and the school's unmatched list shows the case."""
    code, token = school
    push_student(api, token, "C400", "周八")
    first, second = student(name="周八"), student(name="周八")
    assert verify(api, first, school_code=code, student_number="C400",
                  name="周八").json()["status"] == "passed"  # fmt: skip
    body = verify(api, second, school_code=code, student_number="C400",
                  name="周八").json()  # fmt: skip
    assert (body["status"], body["code"], body["next_step"]) == (
        "failed",
        "record_claimed",
        "duplicate_id",
    )
    admin = make_admin(api, internal_auth, student, code)
    listed = api.get(
        f"/api/v1/admin/schools/{code}/unmatched", headers=admin["auth"]
    ).json()
    codes = {item["account_id"]: item["code"] for item in listed["items"]}
    assert codes[second["account_id"]] == "record_claimed"


def test_a_name_change_goes_back_to_pending_and_is_compared_again(
    api, school, student, codes
):
    """Attack: verify under my own name, then rename my account to the
    classmate's — the old pass must not carry over to the new name."""
    code, token = school
    push_student(api, token, "A500", "吴九")
    who = student(name="吴九")
    assert verify(api, who, school_code=code, student_number="A500",
                  name="吴九").json()["status"] == "passed"  # fmt: skip
    changed = api.post(
        "/api/v1/me/auth-info",
        json={"name": "郑十", "code": codes("change_auth_info", who["phone"])},
        headers=who["auth"],
    )
    assert changed.status_code == 200, changed.text

    def shown():
        return api.get("/api/v1/me/registry-verification", headers=who["auth"]).json()

    assert eventually(lambda: shown()["status"] == "failed"), shown()
    assert (shown()["code"], shown()["mismatches"]) == ("name_mismatch", ["name"])


# -- §3 a school admin relinks only its own students -----------------------------------


def test_an_admin_cannot_relink_another_schools_verified_student(
    api, onboard, student, internal_auth, service_sql
):
    """Attack: an admin of school A rewrites the school and number of a
    student verified at school B through a manual link."""
    code_a, token_a = onboard()
    code_b, token_b = onboard()
    push_student(api, token_b, "B600", "钱一")
    push_student(api, token_a, "A600", "钱一")
    victim = student(name="钱一")
    assert verify(api, victim, school_code=code_b, student_number="B600",
                  name="钱一").json()["status"] == "passed"  # fmt: skip
    admin = make_admin(api, internal_auth, student, code_a)
    linked = api.post(
        f"/api/v1/admin/schools/{code_a}/links",
        json={"account_id": victim["account_id"], "student_number": "A600",
              "reason": "转学过来了"},
        headers=admin["auth"],
    )  # fmt: skip
    assert linked.status_code == 403, linked.text
    assert linked.json()["code"] == "link_not_allowed"
    shown = api.get("/api/v1/me/registry-verification", headers=victim["auth"]).json()
    assert (shown["school_code"], shown["student_number"]) == (code_b, "B600")
    refused = service_sql(
        "registry_sync",
        "SELECT count(*) AS n FROM audit_log WHERE action = 'admin.link_refused'"
        " AND object_ids->>'account_id' = %s",
        (victim["account_id"],),
    )
    assert refused[0]["n"] == 1


def test_over_rpc_a_link_to_another_schools_student_is_refused(
    rpc, api, onboard, student
):
    code_a, token_a = onboard()
    code_b, token_b = onboard()
    push_student(api, token_b, "B700", "孔二")
    push_student(api, token_a, "A700", "孔二")
    victim = student(name="孔二")
    verify(api, victim, school_code=code_b, student_number="B700", name="孔二")
    refusal = refused_over_rpc(
        rpc.registry_sync.link_verification,
        {"account_id": victim["account_id"], "school_code": code_a,
         "student_number": "A700", "reason": "试试", "actor": "account:x"},
    )  # fmt: skip
    assert "link_not_allowed" in refusal


def test_a_correction_requests_outcome_reaches_the_students_inbox(
    api, school, student, internal_auth
):
    """Not an attack: the loop DOMAIN.md promises — the school answers a
    correction request and the student is told in the inbox."""
    code, token = school
    user_id = push_student(api, token, "K800", "冯久")  # the registry's typo
    who = student(name="冯九")
    failed = verify(api, who, school_code=code, student_number="K800", name="冯九")
    assert failed.json()["code"] == "name_mismatch"
    asked = api.post(
        "/api/v1/me/registry-verification/correction-request",
        json={"note": "学籍里名字录错了一个字"},
        headers=who["auth"],
    )
    assert asked.status_code == 200, asked.text
    fixed = api.patch(
        f"/scim/v2/Users/{user_id}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "name.formatted", "value": "冯九"}
            ],
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert fixed.status_code == 200, fixed.text

    def outcome():
        items = api.get("/api/v1/me/inbox", headers=who["auth"]).json()["items"]
        return [m for m in items if m["kind"] == "correction_outcome"]

    assert eventually(outcome), "no correction outcome in the inbox"
    assert outcome()[0]["params"] == {
        "school_code": code,
        "status": "passed",
        "code": None,
    }


# -- §2 nobody moves an ID number alone ----------------------------------------------------


@pytest.fixture
def duplicate_case(api, codes, school, student, age):
    """A holder of an ID number, a newcomer who registered it anyway, both
    verified at one school; ``helper(name, aged)`` adds a verified classmate."""
    from tests.e2e.test_duplicate_id import push, register_anyway
    from tests.e2e.test_duplicate_id import verify as verified

    code, token = school
    holder = student(name="韩冰")
    newcomer = register_anyway(api, codes, holder, "韩冰")
    push(api, token, "H1", "韩冰")
    verified(api, newcomer, code, "H1", "韩冰")
    numbers = iter(range(2, 100))

    def helper(name, aged=True):
        who = student(name=name)
        number = f"H{next(numbers)}"
        push(api, token, number, name)
        verified(api, who, code, number, name)
        if aged:
            age(who["account_id"])
        return who

    return holder, newcomer, helper


def test_a_fresh_accounts_yes_does_not_move_an_id_number(api, duplicate_case):
    """Attack: knowing a victim's name and ID number, register it anyway and
    have one friend's brand-new account answer yes in the inbox."""
    from tests.e2e.test_duplicate_id import ask_and_answer, me

    holder, newcomer, helper = duplicate_case
    fresh = helper("新号", aged=False)
    refused = ask_and_answer(api, newcomer, fresh)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "not_eligible_voucher"
    assert refused.json()["reason"] == "recently_created"
    # One old friend's yes is not enough either.
    friend = helper("老友")
    assert ask_and_answer(api, newcomer, friend).status_code == 200
    assert me(api, newcomer)["status"] == "duplicate_pending"
    assert me(api, holder)["id_number_masked"] is not None


def test_over_rpc_a_fresh_helpers_yes_is_refused(rpc, api, duplicate_case):
    """Attack: the same yes sent to recovery.answer_message on the bus."""
    holder, newcomer, helper = duplicate_case
    fresh = helper("新号二", aged=False)
    api.post(
        "/api/v1/me/duplicate-id/assistance-requests",
        json={"classmate_name": fresh["name"], "classmate_phone": fresh["phone"]},
        headers=newcomer["auth"],
    ).raise_for_status()
    box = rpc.recovery.inbox({"account_id": fresh["account_id"]})
    message = box["items"][0]
    refusal = refused_over_rpc(
        rpc.recovery.answer_message,
        {"account_id": fresh["account_id"], "message_id": message["message_id"],
         "approve": True},
    )  # fmt: skip
    assert "not_eligible_voucher" in refusal


def test_the_holder_stops_the_move_and_a_reviewer_decides(
    api, duplicate_case, inbox, staff, service_sql
):
    """Attack: two old friends vouch for the newcomer; the real holder, told
    on their phone, says "not me" before the window ends — nothing moves."""
    from tests.e2e.test_duplicate_id import ask_and_answer, me, moves_of

    holder, newcomer, helper = duplicate_case
    before = len(inbox.messages(holder["phone"]))
    for name in ("甲友", "乙友"):
        assert ask_and_answer(api, newcomer, helper(name)).status_code == 200
    told = inbox.wait_for_new(holder["phone"], before)["body"]
    token = re.search(r"/duplicate-id/not-me/([A-Za-z0-9_-]+)", told).group(1)
    page = api.get(f"/duplicate-id/not-me/{token}")
    assert page.status_code == 200 and "异议" in page.text
    objected = api.post(f"/api/v1/duplicate-id/not-me/{token}")
    assert objected.status_code == 200, objected.text
    assert objected.json()["status"] == "disputed"
    again = api.post(f"/api/v1/duplicate-id/not-me/{token}")
    assert again.status_code == 200 and again.json()["status"] == "disputed"
    # The window passing changes nothing now.
    service_sql(
        "recovery",
        "UPDATE duplicate_resolutions SET effective_at = now() - interval '1 second'"
        " WHERE account_id = %s",
        (newcomer["account_id"],),
    )
    assert eventually(
        lambda: [m for m in moves_of(api, newcomer) if m["state"] == "disputed"]
    )
    reviewer = staff("reviewer")
    queue = api.get("/api/v1/admin/reviews?status=open&limit=100",
                    headers=reviewer["auth"]).json()["items"]  # fmt: skip
    dispute = next(r for r in queue if r["account_id"] == newcomer["account_id"])
    assert dispute["kind"] == "duplicate_dispute"
    decided = api.post(
        f"/api/v1/admin/reviews/{dispute['review_id']}/decision",
        json={"approve": False, "reason": "持证人提供了身份证原件"},
        headers=reviewer["auth"],
    )
    assert decided.status_code == 200, decided.text
    assert eventually(
        lambda: [m for m in moves_of(api, holder) if m["state"] == "cancelled"]
    )
    assert me(api, newcomer)["status"] == "duplicate_pending"
    assert me(api, holder)["id_number_masked"] is not None


# -- §5 a bearer token works only with its device ----------------------------------------


@pytest.mark.parametrize(
    "device_headers, code",
    [
        ({}, "device_required"),  # no X-Device-Id, no device cookie
        ({"X-Device-Id": ""}, "device_id_required"),  # sent empty: malformed
        ({"X-Device-Id": "someone-elses-phone"}, "invalid_token"),
    ],
)
def test_a_stolen_bearer_token_without_its_device_is_refused(
    api, student, device_headers, code
):
    """Attack: replay a leaked bearer token from another machine, sending no
    device (the check used to be skipped), an empty one or another one."""
    who = student()
    headers = {"Authorization": who["auth"]["Authorization"], **device_headers}
    for method, path in (("GET", "/api/v1/me"), ("GET", "/api/v1/me/inbox"),
                         ("GET", "/api/v1/me/registry-verification"),
                         ("DELETE", "/api/v1/sessions/current")):  # fmt: skip
        answer = api.request(method, path, headers=headers)
        assert answer.status_code in (400, 401), (path, answer.text)
        assert answer.json()["code"] == code, (path, answer.text)
    # The token still works on its own device.
    assert api.get("/api/v1/me", headers=who["auth"]).status_code == 200


def test_over_rpc_authenticate_names_a_device(rpc, student):
    """Attack: ask identity.authenticate on the bus with no device at all."""
    who = student()
    refusal = refused_over_rpc(rpc.identity.authenticate, {"token": who["token"]})
    assert "device_required" in refusal
    assert (
        rpc.identity.authenticate({"token": who["token"], "device_id": who["device"]})[
            "account_id"
        ]
        == who["account_id"]
    )


# -- §4 throttles name the account, not the spelling -------------------------------------


def full_width(text):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_respelling_an_id_number_does_not_lift_the_security_question_lock(api, student):
    """Attack: after 3 wrong sets of answers lock the method, type the same
    ID number with spaces, in full width, with a small x — fresh keys, the
    lock walked around without end."""
    from tests.e2e.test_recovery import NEW_PASSWORD, set_questions

    who = student(name="林冲")
    set_questions(api, who, ["北京", "红色", "数学"])
    number = who["id_number"]
    body = {"method": "questions", "new_password": NEW_PASSWORD,
            "answers": ["a", "b", "c"]}  # fmt: skip
    for _ in range(3):
        wrong = api.post("/api/v1/password-resets", json={**body, "login": number})
        assert wrong.status_code == 422, wrong.text
    for spelled in (
        number[:6] + " " + number[6:14] + " " + number[14:],
        full_width(number),
        number.lower(),
        "\u3000" + number,
    ):
        again = api.post("/api/v1/password-resets", json={**body, "login": spelled})
        assert again.status_code == 429, (spelled, again.text)
        assert again.json()["code"] == "method_locked"


# -- §7 smaller holes ---------------------------------------------------------------------


def test_rotating_ipv6_addresses_inside_one_64_share_one_limit(api):
    """Attack: a client with one IPv6 /64 (every home line has one) picks a
    fresh address per forgot-phone match attempt to escape the 30-an-hour
    per-address limit."""
    import ipaddress
    import random

    from tests.e2e.recovery_steps import start

    prefix = (0x20010DB8 << 96) | (random.getrandbits(32) << 64)
    answers = []
    for number in range(32):  # a new target each time: only the address repeats
        address = ipaddress.IPv6Address(prefix | random.getrandbits(64))
        answer = start(api, "NOSCHOOL", f"N{number}", "某某",
                       headers={"X-Forwarded-For": str(address)})  # fmt: skip
        answers.append(answer.status_code)
        if answer.status_code == 429:
            break
    assert answers[-1] == 429, answers
    assert len(answers) == 31 and set(answers[:-1]) == {201}, answers


def test_a_strangers_register_codes_do_not_lock_the_holder_out_of_login_codes(
    api, student, inbox
):
    """Attack: spend a victim's whole daily SMS quota with register codes to
    their phone, so no new-device login code can reach them until midnight."""
    import time

    who = student()
    spent = []
    for _ in range(30):
        answer = api.post(
            "/api/v1/codes",
            json={"channel": "sms", "destination": who["phone"], "purpose": "register"},
        )
        spent.append(answer.status_code)
        if answer.status_code == 429 and answer.json()["code"] == "resend_too_soon":
            time.sleep(answer.json()["retry_after"])
        elif answer.status_code == 429:
            break
    assert spent[-1] == 429, spent  # the open budget is spent
    before = len(inbox.messages(who["phone"]))
    login = api.post(
        "/api/v1/sessions",
        json={"login": who["phone"], "password": who["password"]},
        headers={"X-Device-Id": "dev-a-new-phone-of-the-holder"},
    )
    assert login.status_code == 403, login.text
    assert login.json()["code"] == "device_verification_required"
    assert login.json()["code_sent"] is True, login.text
    assert inbox.code(who["phone"], before)
