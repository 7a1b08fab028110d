"""OneRoster CSV imports over HTTP (issue #9 §3): every sample set in
../shared/data/oneroster, bulk then delta semantics (newest wins, bulk
deactivates what is missing, never deletes), bad packages refused as a
whole with one clear code and nothing changed, a bad package and a good
one of two schools side by side, and a pending verification passing when
the roster arrives."""

import io
import time
import zipfile
from pathlib import Path

import pytest

from services.common.plumbing.testing import random_resident_id
from services.registry_sync.domain import STUDENT_URN

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "oneroster"
MANIFEST_11 = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\n"
USERS_11 = (
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,"
    "userIds,givenName,familyName,middleName,identifier,email,sms,phone,"
    "agentSourcedIds,grades,password,metadata.idType,metadata.idNumber,"
    "metadata.className\n"
)


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content if isinstance(content, bytes) else content)
    return buffer.getvalue()


def sample(name):
    folder = DATA / name
    assert folder.is_dir(), f"{folder} is missing: ../shared must sit beside the repo"
    return zipped({path.name: path.read_bytes() for path in folder.iterdir()})


def upload(api, token, package):
    answer = api.post(
        "/api/v1/school/roster-files",
        data=package,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["import_id"]


def outcome(api, token, import_id, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        state = api.get(
            f"/api/v1/school/roster-files/{import_id}",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        if state["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def imported(api, token, package):
    return outcome(api, token, upload(api, token, package))


def students(service_sql, code):
    return {
        row["external_id"]: row
        for row in service_sql(
            "registry_sync",
            "SELECT * FROM students WHERE school_code = %s AND deleted_at IS NULL",
            (code,),
        )
    }


def user(
    sourced_id,
    number,
    given,
    family="张",
    status="active",
    modified="2026-09-01",
    role="student",
    id_number="",
    class_name="",
):
    return (
        f"{sourced_id},{status},{modified},TRUE,org1,{role},{number},,{given},{family},,"
        f"{number},,,,,7,,{'resident_id' if id_number else ''},{id_number},{class_name}\n"
    )


def manifest(users="bulk", **others):
    lines = MANIFEST_11 + f"file.users,{users}\n"
    for entity, mode in others.items():
        lines += f"file.{entity},{mode}\n"
    return lines


def test_the_sample_sets_import_with_their_mistakes_reported(api, onboard, service_sql):
    code, token = onboard()
    full = imported(api, token, sample("Test_full_data_set"))
    assert full["status"] == "succeeded", full
    assert full["version"] == "1.1"
    assert full["progress"]["users"] == {
        "read": 6,
        "kept": 3,
        "refused": 0,
        "skipped": 3,
        "deactivated": 0,
    }
    assert set(students(service_sql, code)) == {
        "usr-222-66778899",
        "usr-222-1234561232",
        "usr-222-567891",
    }
    minimal = imported(api, onboard()[1], sample("Test_minimal_data_set"))
    assert minimal["status"] == "succeeded", minimal

    delta_code, delta_token = onboard()
    delta = imported(api, delta_token, sample("oneroster_test_data"))
    assert delta["status"] == "succeeded", delta
    assert delta["version"] == "1.2"
    assert set(students(service_sql, delta_code)) == {
        "USER_0"
    }  # a student by roles.csv

    flawed_code, flawed_token = onboard()
    flawed = imported(api, flawed_token, sample("v1p2_full_dataset"))
    assert flawed["status"] == "succeeded", flawed
    errors = {(e["file"], e["line"], e["field"]) for e in flawed["errors"]}
    # `1/05/2023`-style dates are refused row by row; the good student is kept.
    assert ("users.csv", 2, "dateLastModified") in errors
    assert ("users.csv", 7, "dateLastModified") in errors
    assert flawed["progress"]["users"]["kept"] == 1
    assert set(students(service_sql, flawed_code)) == {"usr-222-66778899"}
    assert any(
        "prefferedGivenName" in w and "preferredGivenName" in w
        for w in flawed["warnings"]
    )
    assert any("dataLastModified" in w for w in flawed["warnings"])
    assert flawed["errors_total"] == len(flawed["errors"])


def test_bulk_then_delta_newest_wins_and_bulk_never_deletes(api, school, service_sql):
    code, token = school
    number = random_resident_id(2008)
    first = imported(
        api,
        token,
        zipped(
            {
                "manifest.csv": manifest(),
                "users.csv": USERS_11
                + user("u1", "S1", "一", id_number=number)
                + user("u2", "S2", "二")
                + user("u3", "S3", "三"),
            }
        ),
    )
    assert first["status"] == "succeeded", first
    rows = students(service_sql, code)
    assert set(rows) == {"u1", "u2", "u3"}
    assert rows["u1"]["id_hash"] and number not in str(rows["u1"])

    delta = imported(
        api,
        token,
        zipped(
            {
                "manifest.csv": manifest("delta"),
                "users.csv": USERS_11
                + user(
                    "u1", "S1", "旧", modified="2026-08-01"
                )  # older than what we have
                + user("u2", "S2", "二", status="tobedeleted", modified="2026-10-01")
                + user("u4", "S4", "四", modified="2026-10-01"),
            }
        ),
    )
    assert delta["status"] == "succeeded", delta
    rows = students(service_sql, code)
    assert rows["u1"]["given_name"] == "一"  # the older delta row lost
    assert rows["u2"]["active"] is False
    assert rows["u4"]["active"] is True

    bulk = imported(
        api,
        token,
        zipped(
            {
                "manifest.csv": manifest(),
                "users.csv": USERS_11
                + user("u1", "S1", "一", modified="2026-11-01")
                + user("u3", "S3", "三", modified="2026-11-01"),
            }
        ),
    )
    assert bulk["progress"]["users"]["deactivated"] == 1  # u4 (u2 already was)
    rows = students(service_sql, code)
    assert set(rows) == {"u1", "u2", "u3", "u4"}  # nothing deleted
    assert [rows[k]["active"] for k in ("u1", "u2", "u3", "u4")] == [
        True,
        False,
        True,
        False,
    ]


def bad_packages():
    good_users = USERS_11 + user("b1", "B1", "一")
    big_zero = b"0" * (60 * 1024 * 1024)
    return {
        # Signed like a zip, so it passes the door and the worker refuses it.
        "package_not_zip": b"PK\x03\x04 but nothing of a zip after that",
        "manifest_missing": zipped({"users.csv": good_users}),
        "file_has_bom": zipped(
            {
                "manifest.csv": manifest(),
                "users.csv": b"\xef\xbb\xbf" + good_users.encode(),
            }
        ),
        "file_encoding_gbk": zipped(
            {
                "manifest.csv": manifest(),
                "users.csv": (USERS_11 + user("b1", "B1", "张三")).encode("gbk"),
            }
        ),
        "file_columns_missing": zipped(
            {"manifest.csv": manifest(), "users.csv": "sourcedId,givenName\nb1,x\n"}
        ),
        "file_missing": zipped({"manifest.csv": manifest()}),
        "manifest_invalid": zipped(
            {
                "manifest.csv": "propertyName,value\noneroster.version,9.9\n",
                "users.csv": good_users,
            }
        ),
        "package_zip_bomb": zipped(
            {"manifest.csv": manifest(), "users.csv": good_users, "orgs.csv": big_zero}
        ),
    }


@pytest.mark.parametrize("code", sorted(bad_packages()))
def test_a_bad_package_gets_one_clear_error_and_changes_nothing(
    api, school, service_sql, code
):
    school_code, token = school
    state = imported(api, token, bad_packages()[code])
    assert state["status"] == "failed", state
    assert state["error_code"] == code
    assert state["error_detail"]
    assert students(service_sql, school_code) == {}


def test_a_package_over_the_size_limit_is_refused_at_the_door(api, school):
    _, token = school
    not_zip = api.post(
        "/api/v1/school/roster-files",
        data=b"name,number\n",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
    )
    assert not_zip.status_code == 400 and not_zip.json()["code"] == "package_not_zip"
    answer = api.post(
        "/api/v1/school/roster-files",
        data=b"x" * (21 * 1024 * 1024),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
    )
    # Over the route's body limit: refused from Content-Length, nothing read.
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"
    assert answer.json()["limit"] >= 20 * 1024 * 1024


def test_a_bad_package_and_a_good_one_run_side_by_side(api, onboard, service_sql):
    good_code, good_token = onboard()
    bad_code, bad_token = onboard()
    good = upload(
        api,
        good_token,
        zipped(
            {
                "manifest.csv": manifest(),
                "users.csv": USERS_11
                + "".join(user(f"g{i}", f"G{i}", "甲") for i in range(200)),
            }
        ),
    )
    bad = upload(api, bad_token, b"PK\x03\x04 broken")
    assert outcome(api, bad_token, bad)["error_code"] == "package_not_zip"
    assert outcome(api, good_token, good)["status"] == "succeeded"
    assert len(students(service_sql, good_code)) == 200
    assert students(service_sql, bad_code) == {}
    # One school never reads another's import.
    hidden = api.get(
        f"/api/v1/school/roster-files/{good}",
        headers={"Authorization": f"Bearer {bad_token}"},
    )
    assert hidden.status_code == 404


def test_a_pending_verification_passes_when_the_roster_arrives(api, school, student):
    code, token = school
    who = student(name="李四")
    pending = api.post(
        "/api/v1/me/registry-verification",
        headers=who["auth"],
        json={
            "school_code": code,
            "student_number": "R1",
            "name": "李四",
            "class_name": "七年级1班",
            "id_number": who["id_number"],
        },
    )
    assert pending.json()["status"] == "pending"
    state = imported(
        api,
        token,
        zipped(
            {
                "manifest.csv": manifest(),
                "users.csv": USERS_11
                + user(
                    "r1",
                    "R1",
                    "四",
                    family="李",
                    id_number=who["id_number"],
                    class_name="七年级1班",
                ),
            }
        ),
    )
    assert state["status"] == "succeeded", state

    def settled():
        return api.get("/api/v1/me/registry-verification", headers=who["auth"]).json()

    deadline = time.monotonic() + 10
    while settled()["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert settled()["status"] == "passed", settled()


def test_a_flawed_id_number_is_kept_flagged_and_reported_with_its_line(
    api, school, service_sql
):
    """The row errors of the ID numbers come back from the process pool that
    builds the rows (the e2e platform sends every import through it)."""
    code, token = school
    good = random_resident_id(2008)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")  # a wrong check character
    done = imported(
        api,
        token,
        zipped(
            {
                "manifest.csv": manifest(),
                "users.csv": USERS_11
                + user("f1", "F1", "一", id_number=good)
                + user("f2", "F2", "二", id_number=bad)
                + user("f3", "F3", "三"),
            }
        ),
    )
    assert done["status"] == "succeeded", done
    flagged = [e for e in done["errors"] if e["field"] == "metadata.idNumber"]
    assert len(flagged) == 1 and flagged[0]["line"] == 3 and flagged[0]["kept"], done
    rows = students(service_sql, code)
    assert set(rows) == {"f1", "f2", "f3"}
    assert rows["f1"]["id_hash"] and rows["f2"]["id_hash"] is None
    assert rows["f2"]["id_problem"]


def test_a_nul_in_any_value_refuses_its_row_not_the_import(api, school, service_sql):
    """PostgreSQL text cannot hold NUL. A hostile or broken export with one
    in a sourcedId (claimed even for a refused row), a class type or a
    column of its own loses that row only; the rest of the file lands."""
    code, token = school
    nul_id = user("n\x001", "N1", "一")
    nul_org = user("n2", "N2", "二").replace(",org1,", ",org\x001,")
    classes = (
        "sourcedId,status,dateLastModified,title,classType,courseSourcedId,"
        "schoolSourcedId,termSourcedIds,x\x00tra\n"
        "c1,active,2026-09-01,一班,home\x00room,k1,org1,t1,\n"
        "c2,active,2026-09-01,二班,homeroom,k1,org1,t1,\x00\n"
        "c3,active,2026-09-01,三班,homeroom,k1,org1,t1,\n"
    )
    done = imported(
        api,
        token,
        zipped(
            {
                "manifest.csv": manifest(classes="bulk"),
                "users.csv": USERS_11 + nul_id + nul_org + user("k1", "K1", "三"),
                "classes.csv": classes,
            }
        ),
    )
    assert done["status"] == "succeeded", done
    refused = {(e["file"], e["line"], e["field"], e["reason"]) for e in done["errors"]}
    assert refused >= {
        ("users.csv", 2, "sourcedId", "contains NUL"),
        ("users.csv", 3, "orgSourcedIds", "contains NUL"),
        ("classes.csv", 2, "classType", "contains NUL"),
        ("classes.csv", 3, "x\\x00tra", "contains NUL"),
    }, done["errors"]
    assert set(students(service_sql, code)) == {"k1"}
    kept_classes = service_sql(
        "registry_sync",
        "SELECT external_id FROM classes WHERE school_code = %s",
        (code,),
    )
    assert [row["external_id"] for row in kept_classes] == ["c3"]


def test_a_first_roster_naming_a_student_twice_keeps_the_first(
    api, school, service_sql
):
    """A school's first roster is COPYd straight into its records; a
    student number or user name the file names twice undoes that and the
    file is merged as any later roster is: the first row kept, the repeat
    reported with its line, nothing of the undone attempt left."""
    code, token = school
    rows = (
        user("d1", "D1", "一")
        + user("d2", "D2", "二")
        + user("d3", "D1", "三")  # D1's number and user name again
        + user("d4", "d2", "四")  # D2's user name, in lower case
    )
    done = imported(
        api, token, zipped({"manifest.csv": manifest(), "users.csv": USERS_11 + rows})
    )
    assert done["status"] == "succeeded", done
    twice = {(e["line"], e["field"]) for e in done["errors"] if "twice" in e["reason"]}
    assert twice == {(4, "identifier"), (5, "identifier")}, done["errors"]
    assert done["progress"]["users"] == {
        "read": 4, "kept": 2, "refused": 2, "skipped": 0, "deactivated": 0
    }, done["progress"]  # fmt: skip
    assert {k: r["student_number"] for k, r in students(service_sql, code).items()} == {
        "d1": "D1",
        "d2": "D2",
    }


def test_a_first_roster_meets_the_records_a_school_made_over_scim(
    api, school, service_sql
):
    """A school that created a student over SCIM before its first roster:
    the roster is merged, and a row taking that student's number is
    refused, the SCIM record left as it was."""
    code, token = school
    made = api.post(
        "/scim/v2/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", STUDENT_URN],
            "userName": "scim1",
            "name": {"formatted": "李四"},
            STUDENT_URN: {"studentNumber": "T1"},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text
    rows = user("t1", "T1", "一") + user("t2", "T2", "二")
    done = imported(
        api, token, zipped({"manifest.csv": manifest(), "users.csv": USERS_11 + rows})
    )
    assert done["status"] == "succeeded", done
    taken = {
        (e["line"], e["field"]) for e in done["errors"] if "another" in e["reason"]
    }
    assert taken == {(2, "identifier")}, done["errors"]
    records = service_sql(
        "registry_sync",
        "SELECT source, user_name, student_number FROM students"
        " WHERE school_code = %s ORDER BY student_number",
        (code,),
    )
    assert [tuple(r.values()) for r in records] == [
        ("scim", "scim1", "T1"),
        ("oneroster", "T2", "T2"),
    ]
