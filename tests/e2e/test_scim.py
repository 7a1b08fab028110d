"""SCIM 2.0 for school systems over HTTP (issue #9 §2): scim2-tester's
conformance checks with no failure, a scim2-client session through a whole
lifecycle (filters, paging, sorting, attribute selection, PATCH with value
filters, ETags), school scoping (another school's resource is 404), SCIM
error documents, and ID numbers sealed, hashed and never logged."""

import uuid

import pytest
from httpx2 import Client
from scim2_client import SCIMClientException
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (
    URN,
    Error,
    ListResponse,
    PatchOp,
    PatchOperation,
    SCIMException,
    SearchRequest,
)
from scim2_tester import Status, check_server

from services.common.plumbing.testing import random_resident_id
from services.common.rules.realname import resident_check_char

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
STUDENT = "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student"
SCIM_JSON = "application/scim+json"


def scim_client(api, token):
    http = Client(
        base_url=api.url + "/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    client = SyncSCIMClient(http)
    client.discover()
    return client


def scim(api, method, path, token, **kwargs):
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return getattr(api, method)("/scim/v2" + path, headers=headers, **kwargs)


def student_doc(user_name, name="张三", **extension):
    return {
        "schemas": [CORE_USER, STUDENT],
        "userName": user_name,
        "name": {"formatted": name},
        STUDENT: {"studentNumber": user_name, **extension},
    }


def test_scim2_tester_finds_no_failure(api, school):
    _, token = school
    http = Client(
        base_url=api.url + "/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    results = check_server(SyncSCIMClient(http), raise_exceptions=False)
    failures = [
        f"{r.title} {r.resource_type or ''}: {(r.reason or '')[:300]}"
        for r in results
        if r.status not in (Status.SUCCESS, Status.SKIPPED)
    ]
    assert failures == []
    passed = [r for r in results if r.status == Status.SUCCESS]
    # Discovery, CRUD, PATCH add/replace/remove and attribute selection of
    # both resource types ran (about 90 checks), not a handful.
    assert len(passed) >= 80
    assert {r.resource_type for r in passed} >= {"User", "Group"}


def test_a_scim2_client_session_through_a_student_lifecycle(api, school):
    _, token = school
    client = scim_client(api, token)
    User = client.get_resource_model("User")
    Student = User.get_extension_model(STUDENT)
    Group = client.get_resource_model("Group")
    assert Student is not None

    made = []
    for number, name, grade in (
        ("2024001", "张三", "七年级"),
        ("2024002", "李四", "七年级"),
        ("2024003", "王五", "八年级"),
    ):
        user = User(user_name=number, name={"formatted": name}, active=True)
        user[Student] = Student(
            student_number=number,
            grade=grade,
            class_name="1班",
            enrollment_year=2024,
            status="active",
        )
        made.append(client.create(user))
    first = made[0]
    assert first.id and first.meta.version == 'W/"1"'
    assert client.query(User, first.id).user_name == "2024001"

    def found(filter_, **kwargs):
        answer = client.query(
            User, query_parameters=SearchRequest(filter=filter_, **kwargs)
        )
        return answer, sorted(r.user_name for r in answer.resources or [])

    assert found('userName eq "2024002"')[1] == ["2024002"]
    assert found('userName sw "20240"')[1] == ["2024001", "2024002", "2024003"]
    assert found('name.formatted co "四"')[1] == ["2024002"]
    assert found(f'{STUDENT}:grade eq "八年级"')[1] == ["2024003"]
    assert found('userName eq "2024001" or userName eq "2024003"')[1] == [
        "2024001",
        "2024003",
    ]
    assert found(f'userName pr and {STUDENT}:grade eq "七年级"')[1] == [
        "2024001",
        "2024002",
    ]
    since = first.meta.last_modified.isoformat()
    assert "2024001" not in found(f'meta.lastModified gt "{since}"')[1]
    # A LIKE wildcard in a value is a literal, not a pattern.
    assert found('userName co "%"')[1] == []

    page, names = found(
        'userName sw "2024"', start_index=2, count=1, sort_by="userName"
    )
    assert (page.total_results, page.start_index, page.items_per_page) == (3, 2, 1)
    assert names == ["2024002"]
    descending = client.query(
        User,
        query_parameters=SearchRequest(sort_by="userName", sort_order="descending"),
    )
    assert [r.user_name for r in descending.resources][:3] == [
        "2024003",
        "2024002",
        "2024001",
    ]
    only = client.query(
        User,
        first.id,
        query_parameters=SearchRequest(attributes=["userName"]),
    )
    assert only.user_name == "2024001" and only.name is None

    # A class with two members; PATCH removes one by a value filter.
    klass = client.create(
        Group(
            display_name="七年级1班",
            members=[
                {"value": made[0].id, "type": "User"},
                {"value": made[1].id, "type": "User"},
            ],
        )
    )
    assert {m.value for m in klass.members} == {made[0].id, made[1].id}
    in_class = client.query(User, made[0].id)
    assert [g.display for g in in_class.groups] == ["七年级1班"]
    patched = client.modify(
        Group,
        klass.id,
        PatchOp[Group](
            operations=[
                PatchOperation(
                    op="remove",
                    path=f'members[value eq "{made[1].id}"]',
                )
            ]
        ),
    )
    assert [m.value for m in patched.members] == [made[0].id]

    # PATCH replace on a sub-attribute, add on the extension, remove.
    changed = client.modify(
        User,
        first.id,
        PatchOp[User](
            operations=[
                PatchOperation(op="replace", path="name.formatted", value="张叁"),
                PatchOperation(
                    op="add",
                    path=f"{STUDENT}:department",
                    value="初中部",
                ),
                PatchOperation(op="remove", path="active"),
            ]
        ),
    )
    assert changed.name.formatted == "张叁"
    assert changed[Student].department == "初中部"
    assert changed.active is None
    assert changed.meta.version == 'W/"2"'

    # PUT replaces the whole resource.
    replacement = client.query(User, first.id)
    replacement.display_name = "叁"
    replaced = client.replace(replacement)
    assert replaced.display_name == "叁" and replaced.meta.version == 'W/"3"'

    client.delete(User, made[2].id)
    with pytest.raises((SCIMClientException, SCIMException)):
        client.query(User, made[2].id)
    assert found('userName sw "2024"')[1] == ["2024001", "2024002"]
    assert isinstance(client.query(User), ListResponse)


def test_if_match_with_an_old_version_is_refused_with_412(api, school):
    _, token = school
    made = scim(api, "post", "/Users", token, json=student_doc("E1"))
    assert made.status_code == 201, made.text
    assert made.headers["ETag"] == 'W/"1"'
    assert made.headers["Content-Type"].startswith(SCIM_JSON)
    user_id = made.json()["id"]
    assert made.headers["Location"].endswith(f"/scim/v2/Users/{user_id}")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "x"}],
    }
    ok = scim(
        api,
        "patch",
        f"/Users/{user_id}",
        token,
        json=patch,
        headers={"If-Match": 'W/"1"'},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == 'W/"2"'
    stale = scim(
        api,
        "patch",
        f"/Users/{user_id}",
        token,
        json=patch,
        headers={"If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    assert stale.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert stale.headers["X-Error-Code"] == "precondition_failed"
    gone = scim(
        api, "delete", f"/Users/{user_id}", token, headers={"If-Match": 'W/"1"'}
    )
    assert gone.status_code == 412
    assert (
        scim(
            api, "delete", f"/Users/{user_id}", token, headers={"If-Match": "*"}
        ).status_code
        == 204
    )


def test_one_school_never_sees_another_schools_resources(api, onboard):
    _, token_a = onboard()
    _, token_b = onboard()
    made = scim(api, "post", "/Users", token_a, json=student_doc("S1"))
    assert made.status_code == 201, made.text
    user_id = made.json()["id"]
    for method, kwargs in (
        ("get", {}),
        ("put", {"json": student_doc("S1")}),
        ("delete", {}),
    ):
        answer = scim(api, method, f"/Users/{user_id}", token_b, **kwargs)
        assert answer.status_code == 404, (method, answer.text)
        assert answer.json()["status"] == "404"
    listed = scim(api, "get", "/Users", token_b, params={"filter": 'userName eq "S1"'})
    assert listed.status_code == 200 and listed.json()["totalResults"] == 0
    # B's class cannot take A's student as a member: it is set aside as an
    # id B never got from us would be (scim-sanity's E5), so nothing tells
    # B that it exists.
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "1班",
        "members": [
            {"value": user_id, "type": "User"},
            {"value": str(uuid.uuid4()), "type": "User"},
            {"value": "fake-member-id"},
        ],
    }
    made_b = scim(api, "post", "/Groups", token_b, json=group)
    assert made_b.status_code == 201, made_b.text
    assert "members" not in made_b.json()
    fetched = scim(api, "get", f"/Groups/{made_b.json()['id']}", token_b)
    assert "members" not in fetched.json()
    # A may reuse its own numbers only once: uniqueness is per school.
    again = scim(api, "post", "/Users", token_a, json=student_doc("S1"))
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    assert (
        scim(api, "post", "/Users", token_b, json=student_doc("S1")).status_code == 201
    )


def test_scim_errors_are_scim_error_documents(api, school):
    _, token = school
    cases = [
        (
            scim(api, "get", "/Users", token, params={"filter": "userName eq"}),
            400,
            "invalidFilter",
        ),
        (
            scim(api, "get", "/Users", token, params={"filter": 'nickName eq "x"'}),
            400,
            "invalidFilter",
        ),
        (
            scim(
                api,
                "get",
                "/Users",
                token,
                params={"filter": 'meta.lastModified gt "x"'},
            ),
            400,
            "invalidFilter",
        ),
        (scim(api, "post", "/Users", token, data=b"{not json"), 400, "invalidSyntax"),
        (scim(api, "post", "/Users", token, json={"schemas": [CORE_USER]}), 400, None),
        (scim(api, "get", f"/Users/{uuid.uuid4()}", token), 404, None),
        (scim(api, "get", "/Users/not-a-uuid", token), 404, None),
        (scim(api, "get", f"/{uuid.uuid4()}", token), 404, None),
        (scim(api, "get", "/Users", "sch_wrong"), 401, None),
    ]
    for answer, status, scim_type in cases:
        assert answer.status_code == status, answer.text
        assert answer.headers["Content-Type"].startswith(SCIM_JSON)
        body = answer.json()
        Error.model_validate(body)  # a strict SCIM client accepts it
        assert body["status"] == str(status)
        assert body["detail"].startswith("[") and answer.headers["X-Error-Code"]
        if scim_type:
            assert body["scimType"] == scim_type
        assert "Traceback" not in answer.text


def test_a_scim_call_is_authenticated_first_and_audited_whatever_its_outcome(
    api, school, service_sql
):
    """The gateway passes the token on with the call (one hop): a wrong
    token is still told so before a bad body or query is, and every call
    is audited, refused ones too."""
    code, token = school
    for answer in (
        scim(api, "post", "/Users", "sch_wrong", data=b"{not json"),
        scim(api, "get", "/Users", "sch_wrong", params={"sortOrder": "sideways"}),
        scim(api, "post", "/Users", "sch_wrong", json=student_doc("A1")),
        scim(api, "patch", f"/Users/{uuid.uuid4()}", "sch_wrong", data=b"[]"),
        scim(api, "post", "/.search", "sch_wrong", json={"schemas": [CORE_USER]}),
    ):
        assert answer.status_code == 401, answer.text
        assert answer.headers["X-Error-Code"] == "invalid_school_token"
    missing = scim(api, "get", f"/Users/{uuid.uuid4()}", token)
    assert missing.status_code == 404
    made = scim(api, "post", "/Users", token, json=student_doc("A2"))
    assert made.status_code == 201, made.text
    rows = service_sql(
        "registry_sync",
        "SELECT action FROM audit_log WHERE school_code = %s ORDER BY id",
        (code,),
    )
    actions = [row["action"] for row in rows]
    assert actions[-3:] == ["scim.users.get", "scim.users.create", "scim.user_created"]


def test_a_known_token_is_checked_again_on_every_create(
    api, school, internal_auth, service_sql
):
    """After its first call a token's create is one statement (issue #23):
    the statement checks the token again, so a rotated one is refused at
    once, a bad body with it too (the token is told first), and a refused
    create by a good token (a taken or blank userName, a bad body) writes
    nothing but its audited call."""
    code, token = school
    assert scim(api, "post", "/Users", token, json=student_doc("K1")).status_code == 201
    rotated = api.post(f"/api/v1/internal/schools/{code}/token", headers=internal_auth)
    assert rotated.status_code == 201, rotated.text
    new_token = rotated.json()["api_token"]
    for answer in (
        scim(api, "post", "/Users", token, json=student_doc("K2")),
        scim(api, "post", "/Users", token, json={"schemas": [CORE_USER]}),
    ):
        assert answer.status_code == 401, answer.text
        assert answer.headers["X-Error-Code"] == "invalid_school_token"
    made = scim(api, "post", "/Users", new_token, json=student_doc("K2"))
    assert made.status_code == 201, made.text
    again = scim(api, "post", "/Users", new_token, json=student_doc("K2"))
    assert again.status_code == 409 and again.json()["scimType"] == "uniqueness"
    bad = scim(api, "post", "/Users", new_token, json={"schemas": [CORE_USER]})
    assert bad.status_code == 400, bad.text
    blank = scim(api, "post", "/Users", new_token, json=student_doc("  "))
    assert blank.status_code == 400, blank.text
    assert blank.headers["X-Error-Code"] == "scim_invalid_value"
    assert blank.json()["scimType"] == "invalidValue"
    rows = service_sql(
        "registry_sync",
        "SELECT action FROM audit_log WHERE school_code = %s AND action LIKE 'scim.%%'"
        " ORDER BY id",
        (code,),
    )
    assert [row["action"] for row in rows] == [
        "scim.users.create",
        "scim.user_created",
        "scim.users.create",  # the good token's first create after rotation
        "scim.user_created",
        "scim.users.create",  # the taken userName
        "scim.users.create",  # the bad body
        "scim.users.create",  # the blank userName
    ]
    numbers = service_sql(
        "registry_sync",
        "SELECT user_name FROM students WHERE school_code = %s ORDER BY user_name",
        (code,),
    )
    assert [row["user_name"] for row in numbers] == ["K1", "K2"]


def test_id_numbers_are_sealed_hashed_masked_and_never_logged(
    api, school, service_sql, platform_logs
):
    code, token = school
    number = random_resident_id()
    # Typed as a spreadsheet may hold it: full-width digits, a space, lower x.
    typed = number[:6] + " " + number[6:]
    made = scim(
        api,
        "post",
        "/Users",
        token,
        json=student_doc("ID1", idType="resident_id", idNumber=typed),
    )
    assert made.status_code == 201, made.text
    assert "X-Registry-Problems" not in made.headers
    # The owning school reads back what it wrote.
    assert made.json()[STUDENT]["idNumber"] == typed
    row = service_sql(
        "registry_sync",
        "SELECT * FROM students WHERE school_code = %s AND user_name = 'ID1'",
        (code,),
    )[0]
    stored = " ".join(str(v) for v in row.values())
    assert number not in stored and number[6:14] not in stored
    assert len(row["id_hash"]) == 64 and row["id_problem"] is None
    assert row["id_hint"] == number[:3] + "*" * 11 + number[-4:]

    # A wrong check character is kept, flagged, and never matchable.
    first17 = number[:17]
    wrong = first17 + ("0" if resident_check_char(first17) != "0" else "1")
    flawed = scim(
        api,
        "post",
        "/Users",
        token,
        json=student_doc("ID2", idType="resident_id", idNumber=wrong),
    )
    assert flawed.status_code == 201, flawed.text
    assert flawed.headers["X-Registry-Problems"] == "idNumber=id_checksum_invalid"
    row = service_sql(
        "registry_sync",
        "SELECT id_hash, id_problem FROM students WHERE school_code = %s"
        " AND user_name = 'ID2'",
        (code,),
    )[0]
    assert row == {"id_hash": None, "id_problem": "id_checksum_invalid"}
    logs = "\n".join(platform_logs().values())
    for secret in (number, wrong, typed):
        assert secret not in logs


def test_the_discovery_documents_describe_the_extension(api, school):
    _, token = school
    schemas = scim(api, "get", "/Schemas", token).json()["Resources"]
    by_id = {schema["id"]: schema for schema in schemas}
    assert set(by_id) == {
        CORE_USER,
        STUDENT,
        "urn:ietf:params:scim:schemas:core:2.0:Group",
    }
    names = {a["name"] for a in by_id[STUDENT]["attributes"]}
    assert names == {
        "studentNumber",
        "idType",
        "idNumber",
        "grade",
        "className",
        "department",
        "enrollmentYear",
        "status",
    }
    types = scim(api, "get", "/ResourceTypes/User", token).json()
    assert types["schemaExtensions"] == [{"schema": STUDENT, "required": False}]
    assert str(URN(STUDENT)) == STUDENT
