"""SCIM as identity providers provision (issue #25 §1), over HTTP: Entra
ID's and Okta's documented requests (tests/fixtures/scim_idp) create,
patch and deactivate students; what the registry does not keep is set
aside and never answered back; scim-sanity's strict probe, a conformance
tool nobody here wrote, finds no failure."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scim_idp"
SCIM_JSON = "application/scim+json"
STUDENT = "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student"


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def scim(api, method, path, token, **kwargs):
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": SCIM_JSON,
        **kwargs.pop("headers", {}),
    }
    return getattr(api, method)("/scim/v2" + path, headers=headers, **kwargs)


def provisioned(api, token, name):
    document = fixture(name)
    document["userName"] = f"{document['userName']}-{uuid.uuid4().hex[:8]}"
    document["externalId"] = str(uuid.uuid4())  # unique per school, as an IdP's
    made = scim(api, "post", "/Users", token, json=document)
    assert made.status_code == 201, made.text
    return made.json()


def test_entra_id_provisions_a_student_and_keeps_what_the_registry_keeps(api, school):
    _, token = school
    user = provisioned(api, token, "entra_create_user")
    assert user[STUDENT]["studentNumber"] == "20240117"  # from employeeNumber
    assert user[STUDENT]["department"] == "Grade 7"
    fetched = scim(api, "get", f"/Users/{user['id']}", token).json()
    for set_aside in ("emails", "phoneNumbers", "title", "locale", "roles"):
        assert set_aside not in fetched and set_aside not in user
    assert not any("enterprise" in urn for urn in fetched["schemas"])

    patch = f"/Users/{user['id']}"
    answer = scim(api, "patch", patch, token, json=fixture("entra_patch_multi_valued"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"]["familyName"] == "updatedFamilyName"
    answer = scim(api, "patch", patch, token, json=fixture("entra_patch_enterprise"))
    assert answer.status_code == 200 and answer.json()[STUDENT]["department"] == (
        "Grade 8"
    )
    version = answer.json()["meta"]["version"]
    # Only what the registry does not keep: 200, nothing changed.
    answer = scim(api, "patch", patch, token, json=fixture("entra_patch_emails_only"))
    assert answer.status_code == 200 and answer.json()["meta"]["version"] == version
    answer = scim(api, "patch", patch, token, json=fixture("entra_patch_no_path"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is False
    assert answer.json()["displayName"] == "updatedDisplayName"


def test_okta_provisions_then_deactivates_and_replaces(api, school):
    _, token = school
    user = provisioned(api, token, "okta_create_user")
    assert user["userName"].startswith("test.user@okta.local")
    assert "password" not in user and "emails" not in user
    answer = scim(
        api,
        "patch",
        f"/Users/{user['id']}",
        token,
        json=fixture("okta_deactivate_user"),
    )
    assert answer.status_code == 200 and answer.json()["active"] is False
    # Okta's PUT: the whole user again, as it keeps it.
    replacement = {**fixture("okta_create_user"), "userName": user["userName"]}
    replacement["id"] = user["id"]
    replacement["displayName"] = "Test User Renamed"
    answer = scim(api, "put", f"/Users/{user['id']}", token, json=replacement)
    assert answer.status_code == 200, answer.text
    assert answer.json()["displayName"] == "Test User Renamed"


def test_scim_sanity_strict_probe_finds_no_failure(api, school):
    _, token = school
    probe = subprocess.run(
        [
            sys.executable,
            "-m",
            "scim_sanity",
            "probe",
            api.url + "/scim/v2",
            "--token",
            token,
            "--strict",
            "--json-output",
            "--i-accept-side-effects",
            "--timeout",
            "15",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(probe.stdout)
    results = []

    def walk(node):
        if isinstance(node, dict):
            if "status" in node and "name" in node:
                results.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    failed = [r for r in results if r["status"] not in ("pass", "skip")]
    assert failed == [], failed
    passed = [r for r in results if r["status"] == "pass"]
    # Discovery, the User and Group lifecycles, search, errors: not a handful.
    assert len(passed) >= 25, probe.stdout[-2000:]


def test_a_schools_sources_take_the_numbers_from_where_its_idp_puts_them(
    api, onboard, internal_auth
):
    code, token = onboard()
    path = f"/api/v1/internal/schools/{code}/scim-sources"
    assert api.get(path, headers=internal_auth).json() == {
        "code": code,
        "sources": {
            "student_number": ["extension", "employeeNumber", "userName"],
            "id_number": ["extension"],
        },
        "defaults": True,
    }
    wanted = {"student_number": ["userName"], "id_number": ["employeeNumber"]}
    assert api.put(path, json={"sources": wanted}).status_code == 401
    for wrong in ({"id_number": ["userName"]}, {"student_number": []}):
        refused = api.put(path, json={"sources": wrong}, headers=internal_auth)
        assert refused.status_code == 400, refused.text
    missing = api.put(
        "/api/v1/internal/schools/NOSUCH1/scim-sources",
        json={"sources": wanted},
        headers=internal_auth,
    )
    assert missing.status_code == 404
    answer = api.put(path, json={"sources": wanted}, headers=internal_auth)
    assert answer.status_code == 200 and answer.json()["defaults"] is False

    document = fixture("entra_create_user")
    document["userName"] = "S" + uuid.uuid4().hex[:9]
    document["externalId"] = str(uuid.uuid4())
    document["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"][
        "employeeNumber"
    ] = "11010519491231002X"  # this school's IdP carries the ID number there
    made = scim(api, "post", "/Users", token, json=document)
    assert made.status_code == 201, made.text
    user = made.json()
    assert user[STUDENT]["idNumber"] == "11010519491231002X"
    assert "X-Registry-Problems" not in made.headers  # a valid resident ID
    found = scim(
        api,
        "get",
        "/Users",
        token,
        params={"filter": f'userName eq "{document["userName"]}"'},
    ).json()
    assert found["totalResults"] == 1
    # Back to the defaults: the next IdP create takes employeeNumber as the
    # student number again.
    reset = api.put(path, json={"sources": {}}, headers=internal_auth)
    assert reset.json()["defaults"] is True
    again = provisioned(api, token, "entra_create_user")
    assert again[STUDENT]["studentNumber"] == "20240117"
    assert "idNumber" not in again[STUDENT]


def test_the_schools_admin_sets_its_own_sources_and_no_other(
    api, onboard, student, internal_auth
):
    code, _ = onboard()
    other_code, _ = onboard()
    admin = student(name="鲁肃")
    granted = api.put(
        f"/api/v1/internal/accounts/{admin['account_id']}/roles",
        json={"roles": [{"role": "school_admin", "school_code": code}]},
        headers=internal_auth,
    )
    assert granted.status_code == 200, granted.text
    body = {"sources": {"student_number": ["employeeNumber", "userName"]}}
    # The roles reach the gateway's cached principal on roles_changed.
    own = api.put(
        f"/api/v1/admin/schools/{code}/scim-sources", json=body, headers=admin["auth"]
    )
    assert own.status_code == 200, own.text
    assert own.json()["sources"]["student_number"] == ["employeeNumber", "userName"]
    other = api.put(
        f"/api/v1/admin/schools/{other_code}/scim-sources",
        json=body,
        headers=admin["auth"],
    )
    assert other.status_code == 403 and other.json()["code"] == "not_your_school"
    stranger = student(name="曹操")
    refused = api.put(
        f"/api/v1/admin/schools/{code}/scim-sources",
        json=body,
        headers=stranger["auth"],
    )
    assert refused.status_code == 403 and refused.json()["code"] == "role_required"
