"""The attacks of issue #20, each as an attacker inside a school would try
it (two phones and a class list), through HTTP and, where a service's RPC is
the boundary, over the broker too. One line per test says the attack."""

import pytest
from nameko.exceptions import RemoteError

from services.common.realname import resident_check_char
from tests.e2e.test_registry_verification import eventually, push_student, verify


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
    admin = student(name="管理员")
    api.put(
        f"/api/v1/internal/accounts/{admin['account_id']}/roles",
        json={"roles": [{"role": "school_admin", "school_code": code}]},
        headers=internal_auth,
    ).raise_for_status()
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
    admin = student(name="管理员")
    api.put(
        f"/api/v1/internal/accounts/{admin['account_id']}/roles",
        json={"roles": [{"role": "school_admin", "school_code": code_a}]},
        headers=internal_auth,
    ).raise_for_status()
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
    with pytest.raises(RemoteError) as refused:
        rpc.registry_sync.link_verification(
            {"account_id": victim["account_id"], "school_code": code_a,
             "student_number": "A700", "reason": "试试", "actor": "account:x"}
        )  # fmt: skip
    assert "link_not_allowed" in str(refused.value)


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
