"""Registry verification (学籍核验) and the school admin tools over HTTP
(issue #9 §5, §6, §7): onboard → SCIM push → a student verifies → passed,
and identity learns it; pending until the roster arrives, then passed with
no resubmission; failed with the differing fields only; a record later
marked transferred moves the account; admin refresh and manual link,
cross-school refusals; minors need a verified guardian first."""

import time

from services.common.rules.realname import resident_check_char

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
STUDENT = "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def push_student(
    api, token, number, name, class_name="七年级1班", id_number=None, grade="七年级"
):
    extension = {"studentNumber": number, "className": class_name, "grade": grade}
    if id_number:
        extension.update(idType="resident_id", idNumber=id_number)
    answer = api.post(
        "/scim/v2/Users",
        json={
            "schemas": [CORE_USER, STUDENT],
            "userName": number,
            "name": {"formatted": name},
            STUDENT: extension,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def verify(api, who, **body):
    return api.post("/api/v1/me/registry-verification", json=body, headers=who["auth"])


def eventually(probe, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def identity_status(api, who):
    return api.get("/api/v1/me", headers=who["auth"]).json()["registry_status"]


def test_a_pushed_student_verifies_and_identity_learns_it(api, school, student):
    code, token = school
    who = student(name="张三")
    push_student(api, token, "2024001", "張三", id_number=who["id_number"])
    answer = verify(
        api,
        who,
        school_code=code,
        student_number="2024001",
        name="张 三",
        class_name="七年级 1班",
        id_number=who["id_number"].lower(),
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "passed" and body["code"] is None
    assert body["mismatches"] == [] and body["verified_since"]
    assert eventually(lambda: identity_status(api, who) == "passed")
    shown = api.get("/api/v1/me/registry-verification", headers=who["auth"]).json()
    assert shown["status"] == "passed" and shown["updated_at"]


def test_pending_until_the_roster_arrives_then_passed_without_resubmission(
    api, school, student
):
    code, token = school
    who = student(name="李四")
    answer = verify(api, who, school_code=code, student_number="P1", name="李四")
    assert answer.json()["status"] == "pending"
    assert answer.json()["code"] == "school_not_synced"
    assert eventually(lambda: identity_status(api, who) == "pending")
    push_student(api, token, "P1", "李四")
    shown = api.get("/api/v1/me/registry-verification", headers=who["auth"]).json()
    assert shown["status"] == "passed", shown
    assert eventually(lambda: identity_status(api, who) == "passed")


def test_failed_names_the_fields_never_the_registry_values(api, school, student):
    code, token = school
    who = student(name="王五")
    first17 = who["id_number"][:17]
    other = "110105200001011" + "23"
    other = other[:17] + resident_check_char(other[:17])
    push_student(api, token, "F1", "王武", class_name="八年级2班", id_number=other)
    answer = verify(
        api,
        who,
        school_code=code,
        student_number="F1",
        name="王五",
        class_name="七年级1班",
        id_number=first17 + who["id_number"][17],
    )
    body = answer.json()
    assert body["status"] == "failed"
    assert body["code"] == "id_number_mismatch"
    assert body["mismatches"] == ["id_number", "name", "class_name"]
    assert "王武" not in answer.text and "八年级" not in answer.text
    assert other not in answer.text
    missing = verify(api, who, school_code=code, student_number="NOPE", name="王五")
    assert missing.json()["code"] == "not_in_registry"
    unknown = verify(
        api, who, school_code="NOSUCHSCHOOL", student_number="1", name="王五"
    )
    assert unknown.json()["code"] == "school_not_onboarded"


def test_a_record_marked_transferred_moves_the_account(api, school, student):
    code, token = school
    who = student(name="赵六")
    user_id = push_student(api, token, "T1", "赵六")
    assert (
        verify(api, who, school_code=code, student_number="T1", name="赵六").json()[
            "status"
        ]
        == "passed"
    )
    patched = api.patch(
        f"/scim/v2/Users/{user_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "path": f"{STUDENT}:status", "value": "transferred"}
            ],
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert patched.status_code == 200, patched.text
    shown = api.get("/api/v1/me/registry-verification", headers=who["auth"]).json()
    assert (shown["status"], shown["code"]) == ("failed", "record_inactive")
    assert eventually(lambda: identity_status(api, who) == "failed")


def test_one_record_verifies_one_account(api, school, student):
    code, token = school
    push_student(api, token, "C1", "孙七")
    first, second = student(name="孙七"), student(name="孙七")
    assert (
        verify(api, first, school_code=code, student_number="C1", name="孙七").json()[
            "status"
        ]
        == "passed"
    )
    body = verify(
        api, second, school_code=code, student_number="C1", name="孙七"
    ).json()
    assert (body["status"], body["code"]) == ("failed", "record_claimed")


def test_minors_need_a_verified_guardian_first(api, school, student):
    code, _ = school
    child = student(name="周小八", year=2016)
    answer = verify(api, child, school_code=code, student_number="M1", name="周小八")
    assert answer.status_code == 422
    assert answer.json()["code"] == "guardian_required"


def make_admin(api, internal_auth, student, code):
    admin = student(name="管理员")
    granted = api.put(
        f"/api/v1/internal/accounts/{admin['account_id']}/roles",
        json={"roles": [{"role": "school_admin", "school_code": code}]},
        headers=internal_auth,
    )
    assert granted.status_code == 200, granted.text
    return admin


def test_school_admins_list_refresh_and_link_their_own_students_only(
    api, onboard, student, internal_auth, service_sql
):
    code, token = onboard()
    other_code, _ = onboard()
    # The registry holds a typo of the student's name (the account's own
    # real name is what is compared, issue #20 §1).
    push_student(api, token, "A1", "吴久")
    who = student(name="吴九")
    failed = verify(api, who, school_code=code, student_number="A1", name="吴九")
    assert failed.json()["code"] == "name_mismatch"
    corrected = api.post(
        "/api/v1/me/registry-verification/correction-request",
        json={"note": "我叫吴九，学籍里录错了"},
        headers=who["auth"],
    )
    assert corrected.status_code == 200, corrected.text
    admin = make_admin(api, internal_auth, student, code)
    outsider = make_admin(api, internal_auth, student, other_code)

    listed = api.get(
        f"/api/v1/admin/schools/{code}/unmatched",
        params={"status": "failed"},
        headers=admin["auth"],
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [
        (i["account_id"], i["code"], i["mismatches"], i["correction_note"])
        for i in items
    ] == [(who["account_id"], "name_mismatch", ["name"], "我叫吴九，学籍里录错了")]
    # The registry's value is in no answer (the note is the student's own words).
    assert "吴久" not in listed.text

    # Another school's admin sees nothing of it.
    for answer in (
        api.get(f"/api/v1/admin/schools/{code}/unmatched", headers=outsider["auth"]),
        api.post(
            f"/api/v1/admin/schools/{code}/students/{who['account_id']}/refresh",
            headers=outsider["auth"],
        ),
        api.post(
            f"/api/v1/admin/schools/{code}/links",
            headers=outsider["auth"],
            json={
                "account_id": who["account_id"],
                "student_number": "A1",
                "reason": "核对无误",
            },
        ),
    ):
        assert answer.status_code == 403 and answer.json()["code"] == "not_your_school"
    # Through its own school's path, the student is unknown to the outsider.
    hidden = api.post(
        f"/api/v1/admin/schools/{other_code}/students/{who['account_id']}/refresh",
        headers=outsider["auth"],
    )
    assert hidden.status_code == 404

    refreshed = api.post(
        f"/api/v1/admin/schools/{code}/students/{who['account_id']}/refresh",
        headers=admin["auth"],
    )
    assert refreshed.status_code == 200 and refreshed.json()["status"] == "failed"
    linked = api.post(
        f"/api/v1/admin/schools/{code}/links",
        headers=admin["auth"],
        json={
            "account_id": who["account_id"],
            "student_number": "A1",
            "reason": "学籍卡核对，系统录入错字",
        },
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["status"] == "passed"
    assert eventually(lambda: identity_status(api, who) == "passed")
    assert (
        api.get(
            f"/api/v1/admin/schools/{code}/unmatched", headers=admin["auth"]
        ).json()["items"]
        == []
    )
    no_record = api.post(
        f"/api/v1/admin/schools/{code}/links",
        headers=admin["auth"],
        json={"account_id": who["account_id"], "student_number": "ZZ", "reason": "xx"},
    )
    assert no_record.status_code == 404
    audit = service_sql(
        "registry_sync",
        "SELECT actor, action, object_ids, request_id FROM audit_log"
        " WHERE school_code = %s AND action LIKE 'admin.%%' ORDER BY id",
        (code,),
    )
    actions = [row["action"] for row in audit]
    assert actions == [
        "admin.unmatched_listed",
        "admin.verification_refreshed",
        "admin.verification_linked",
        "admin.unmatched_listed",
    ]
    assert all(row["actor"] == f"account:{admin['account_id']}" for row in audit)
    assert all(row["request_id"] for row in audit)
    assert "吴" not in str(audit)
    # Only a failed verification can ask for a correction.
    late = api.post(
        "/api/v1/me/registry-verification/correction-request",
        json={"note": "再次申请"},
        headers=who["auth"],
    )
    assert late.status_code == 422 and late.json()["code"] == "verification_not_failed"
