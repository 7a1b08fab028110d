"""Schools, their API tokens and staff roles over HTTP (issue #9 §1): a
token is shown once and kept only as a keyed hash, rotation kills the old
one, a school admin acts only for its own school, roles count from the next
request, and every school-system and admin request is audited without
personal data. Also the ops CLI."""

import os
import subprocess
import sys
import uuid

import pytest

from devtools.platform import ROOT
from services.common.plumbing.testing import random_school_code as new_code


def school_me(api, token):
    return api.get("/api/v1/school/me", headers={"Authorization": f"Bearer {token}"})


def test_a_school_token_is_shown_once_kept_hashed_and_rotated(
    api, internal_auth, onboard, service_sql
):
    code, token = onboard()
    assert token.startswith("sch_") and len(token) > 40
    me = school_me(api, token)
    assert me.status_code == 200, me.text
    assert me.json() == {"school_code": code, "name": "测试学校"}
    # Only a keyed hash is stored, and the token is nowhere in the database.
    row = service_sql(
        "registry_sync", "SELECT * FROM schools WHERE code = %s", (code,)
    )[0]
    assert row["token_hash"] != token and len(row["token_hash"]) == 64
    assert token not in " ".join(str(v) for v in row.values())

    again = api.post(
        "/api/v1/internal/schools",
        json={"code": code, "name": "x"},
        headers=internal_auth,
    )
    assert again.status_code == 409 and again.json()["code"] == "school_exists"

    rotated = api.post(f"/api/v1/internal/schools/{code}/token", headers=internal_auth)
    assert rotated.status_code == 201, rotated.text
    new_token = rotated.json()["api_token"]
    assert new_token != token
    old = school_me(api, token)
    assert old.status_code == 401 and old.json()["code"] == "invalid_school_token"
    assert school_me(api, new_token).status_code == 200

    missing = api.post(
        f"/api/v1/internal/schools/{new_code()}/token", headers=internal_auth
    )
    assert missing.status_code == 404 and missing.json()["code"] == "school_not_found"


def test_operations_need_the_internal_token(api, student):
    me = student()
    for answer in (
        api.post("/api/v1/internal/schools", json={"code": new_code(), "name": "x"}),
        api.post(
            "/api/v1/internal/schools",
            json={"code": new_code(), "name": "x"},
            headers={"Authorization": f"Bearer {me['token']}"},
        ),
        api.put(
            f"/api/v1/internal/accounts/{me['account_id']}/roles",
            json={"roles": [{"role": "ops"}]},
        ),
    ):
        assert answer.status_code == 401, answer.text


def set_roles(api, internal_auth, account_id, roles):
    return api.put(
        f"/api/v1/internal/accounts/{account_id}/roles",
        json={"roles": roles},
        headers=internal_auth,
    )


def test_a_school_admin_acts_only_for_its_own_school(
    api, internal_auth, onboard, student, service_sql
):
    mine, _ = onboard()
    other, _ = onboard()
    admin, stranger = student(), student()
    granted = set_roles(
        api,
        internal_auth,
        admin["account_id"],
        [{"role": "school_admin", "school_code": mine}],
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["roles"] == [f"school_admin:{mine}", "student"]

    own = api.get(f"/api/v1/admin/schools/{mine}", headers=admin["auth"])
    assert own.status_code == 200, own.text
    assert own.json()["code"] == mine and "api_token" not in own.json()
    cross = api.get(f"/api/v1/admin/schools/{other}", headers=admin["auth"])
    assert cross.status_code == 403 and cross.json()["code"] == "not_your_school"
    plain = api.get(f"/api/v1/admin/schools/{mine}", headers=stranger["auth"])
    assert plain.status_code == 403 and plain.json()["code"] == "role_required"

    # Ops see any school; the grant counts from the next request (the
    # gateway caches principals for 600 s in this tier: only the
    # roles_changed broadcast explains it).
    assert set_roles(api, internal_auth, stranger["account_id"], [{"role": "ops"}]).ok
    assert api.get(f"/api/v1/admin/schools/{other}", headers=stranger["auth"]).ok
    assert set_roles(api, internal_auth, admin["account_id"], []).json()["roles"] == [
        "student"
    ]
    withdrawn = api.get(f"/api/v1/admin/schools/{mine}", headers=admin["auth"])
    assert withdrawn.status_code == 403 and withdrawn.json()["code"] == "role_required"

    # Audited: who, which school, what; never a name, number or token.
    rows = service_sql(
        "registry_sync",
        "SELECT actor, action, object_ids::text, request_id FROM audit_log"
        " WHERE school_code = %s ORDER BY id",
        (mine,),
    )
    assert [r["action"] for r in rows] == ["school_onboarded", "school_viewed"]
    assert rows[1]["actor"] == f"account:{admin['account_id']}"
    assert all(r["request_id"] for r in rows)
    roles_audit = service_sql(
        "identity",
        "SELECT actor, detail::text FROM audit_log WHERE account_id = %s"
        " AND action = 'roles_set' ORDER BY id",
        (admin["account_id"],),
    )
    assert [r["actor"] for r in roles_audit] == ["internal_api", "internal_api"]


@pytest.mark.parametrize(
    "roles,status,code",
    [
        ([{"role": "school_admin"}], 422, "role_needs_school"),
        ([{"role": "ops", "school_code": "BJ101"}], 422, "role_has_no_school"),
        ([{"role": "root"}], 400, "invalid_request"),
        (
            [{"role": "school_admin", "school_code": "bad code"}],
            400,
            "school_code_invalid",
        ),
    ],
)
def test_bad_role_grants_are_refused(api, internal_auth, student, roles, status, code):
    me = student(login=False)
    answer = set_roles(api, internal_auth, me["account_id"], roles)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code


def test_roles_for_an_unknown_account_are_404(api, internal_auth):
    answer = set_roles(api, internal_auth, str(uuid.uuid4()), [{"role": "reviewer"}])
    assert answer.status_code == 404 and answer.json()["code"] == "account_not_found"


def test_every_school_system_request_is_audited(api, onboard, service_sql):
    code, token = onboard()
    for _ in range(3):
        assert school_me(api, token).status_code == 200
    rows = service_sql(
        "registry_sync",
        "SELECT actor, action FROM audit_log WHERE school_code = %s AND action = 'school.me'",
        (code,),
    )
    assert rows == [{"actor": f"school:{code}", "action": "school.me"}] * 3


def run_cli(platform, *args):
    return subprocess.run(
        [sys.executable, "-m", "services.registry_sync.cli", *args],
        cwd=ROOT,
        env={**os.environ, "AMQP_URI": platform.env["AMQP_URI"]},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_ops_cli_onboards_and_rotates(api, platform):
    code = new_code()
    made = run_cli(platform, "onboard", code, "命令行学校", "--region", "上海")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()  # standard output holds the token alone
    assert school_me(api, token).json()["school_code"] == code
    rotated = run_cli(platform, "rotate", code)
    assert rotated.returncode == 0, rotated.stderr
    assert school_me(api, token).status_code == 401
    assert school_me(api, rotated.stdout.strip()).status_code == 200
    again = run_cli(platform, "onboard", code, "重复")
    assert again.returncode == 1 and "school_exists" in again.stderr
