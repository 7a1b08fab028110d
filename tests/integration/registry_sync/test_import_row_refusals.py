"""OneRoster imports through registry_sync's RPC (start_import,
import_status), its own import runner and worker, against the real broker
and database: a row PostgreSQL could not store loses that row only; a first
roster naming a student twice keeps the first."""

import base64
import io
import time
import zipfile

from nameko.standalone.rpc import ServiceRpcProxy

from services.common.plumbing.testing import random_school_code

USERS = (
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,"
    "givenName,familyName,identifier\n"
)
MANIFEST = "propertyName,value\noneroster.version,1.1\nfile.users,bulk\n"


def _package(users):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.csv", MANIFEST)
        archive.writestr("users.csv", USERS + users)
    return base64.b64encode(buffer.getvalue()).decode()


def _settled(proxy, school, import_id):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = proxy.import_status({"school_code": school, "import_id": import_id})
        if state["status"] in ("succeeded", "failed"):
            return state
        time.sleep(0.2)
    raise AssertionError(f"import {import_id} still {state['status']}")


def _imported(registry, users):
    """``users`` (rows of users.csv) imported into a new school through
    the RPC: ``(school code, the import's settled status)``."""
    school = random_school_code()
    with ServiceRpcProxy("registry_sync", registry) as proxy:
        proxy.onboard_school({"code": school, "name": "学校", "actor": "test"})
        started = proxy.start_import(
            {"school_code": school, "package_b64": _package(users)}
        )
        return school, _settled(proxy, school, started["import_id"])


def test_a_nul_in_a_sourced_id_refuses_the_row_not_the_import(registry, registry_sql):
    school, state = _imported(
        registry,
        "u\x001,active,2026-09-01,TRUE,o,student,s1,一,张,S1\n"
        "u2,active,2026-09-01,TRUE,o,student,s2,二,张,S2\n",
    )
    assert state["status"] == "succeeded", state
    assert [(e["line"], e["field"], e["reason"]) for e in state["errors"]] == [
        (2, "sourcedId", "contains NUL")
    ]
    kept = registry_sql(
        "SELECT external_id FROM students WHERE school_code = %s", (school,)
    )
    assert [row["external_id"] for row in kept] == ["u2"]


def test_a_first_roster_naming_a_number_twice_keeps_the_first(registry, registry_sql):
    """The first roster's COPY straight into students is undone by the
    repeat and the file merged: the first row kept, the repeat reported."""
    school, state = _imported(
        registry,
        "u1,active,2026-09-01,TRUE,o,student,s1,一,张,S1\n"
        "u2,active,2026-09-01,TRUE,o,student,s2,二,张,S2\n"
        "u3,active,2026-09-01,TRUE,o,student,s3,三,张,S1\n",
    )
    assert state["status"] == "succeeded", state
    assert [(e["line"], e["field"]) for e in state["errors"]] == [(4, "identifier")]
    assert state["progress"]["users"]["kept"] == 2, state
    kept = registry_sql(
        "SELECT external_id FROM students WHERE school_code = %s ORDER BY 1", (school,)
    )
    assert [row["external_id"] for row in kept] == ["u1", "u2"]
