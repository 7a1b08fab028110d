"""Pushed enrolments and change windows over HTTP (issue #9 §4): idempotent
and order-safe (the newest as_of wins, an event leaves only when something
changed), only the current term's enrolments reach identity, a bad item is
refused by index while the good ones are kept, and what identity's
projection ends up holding — including from a OneRoster import."""

import time

from tests.e2e.test_oneroster import imported, zipped


def push(api, token, path, items):
    return api.put(path, json=items, headers={"Authorization": f"Bearer {token}"})


def item(number="E1", course="MATH", term="2026-1", as_of="2026-10-01T00:00:00Z", **kw):
    return {
        "student_number": number,
        "course_id": course,
        "term": term,
        "kind": "school_arranged",
        "exam_ended": False,
        "grades_published": False,
        "as_of": as_of,
        **kw,
    }


def eventually(probe, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def identity_enrollment(service_sql, code, number="E1", course="MATH"):
    rows = service_sql(
        "identity",
        "SELECT * FROM enrollments WHERE school_code = %s AND student_number = %s"
        " AND course_id = %s",
        (code, number, course),
    )
    return rows[0] if rows else None


def events(service_sql, code, event_type):
    return service_sql(
        "registry_sync",
        "SELECT payload FROM outbox WHERE event_type = %s"
        " AND payload->>'school_code' = %s ORDER BY id",
        (event_type, code),
    )


def test_enrolments_are_idempotent_and_the_newest_wins(api, school, service_sql):
    code, token = school
    path = "/api/v1/school/enrollments"
    first = push(api, token, path, [item(exam_ended=False)])
    assert first.status_code == 200, first.text
    assert first.json()["changed"] == 1 and first.json()["published"] == 1
    again = push(api, token, path, [item(exam_ended=False)])
    assert again.json()["changed"] == 0  # the same push twice: one effect
    newer = push(
        api, token, path, [item(exam_ended=True, as_of="2026-11-01T00:00:00Z")]
    )
    assert newer.json()["changed"] == 1
    older = push(
        api, token, path, [item(exam_ended=False, as_of="2026-10-15T00:00:00Z")]
    )
    assert older.json()["changed"] == 0  # arrived late, changes nothing
    assert len(events(service_sql, code, "enrollment_changed")) == 2
    assert eventually(
        lambda: (identity_enrollment(service_sql, code) or {}).get("exam_ended") is True
    )


def test_a_bad_item_is_refused_by_index_and_the_good_ones_kept(
    api, school, service_sql
):
    code, token = school
    answer = push(
        api,
        token,
        "/api/v1/school/enrollments",
        [
            item(number="G1"),
            {**item(number="G2"), "kind": "whatever"},
            item(number="G3"),
        ],
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == "batch_partially_refused"
    assert [(e["index"], e["field"]) for e in body["refused"]] == [(1, "kind")]
    assert body["changed"] == 2
    kept = service_sql(
        "registry_sync",
        "SELECT student_number FROM enrollments WHERE school_code = %s ORDER BY 1",
        (code,),
    )
    assert [row["student_number"] for row in kept] == ["G1", "G3"]
    assert (
        push(api, token, "/api/v1/school/enrollments", {"not": "a list"}).status_code
        == 400
    )


def test_only_the_current_terms_enrolments_reach_identity(api, school, service_sql):
    code, token = school
    set_term = api.put(
        "/api/v1/school/current-term",
        json={"term": "2026-1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert set_term.status_code == 200, set_term.text
    answer = push(
        api,
        token,
        "/api/v1/school/enrollments",
        [item(course="NOW", term="2026-1"), item(course="OLD", term="2025-2")],
    )
    assert answer.json()["changed"] == 2 and answer.json()["published"] == 1
    assert [
        e["payload"]["course_id"]
        for e in events(service_sql, code, "enrollment_changed")
    ] == ["NOW"]


def test_change_windows_reach_identity_and_can_be_cancelled(api, school, service_sql):
    code, token = school
    window = {
        "fields": ["student_number", "name"],
        "starts_at": "2026-09-01T00:00:00Z",
        "ends_at": "2026-09-15T00:00:00Z",
        "as_of": "2026-08-01T00:00:00Z",
    }
    first = push(api, token, "/api/v1/school/change-windows", [window])
    assert first.status_code == 200, first.text
    (window_id,) = first.json()["window_ids"]
    # Without an id, the same window pushed again is the same window.
    again = push(api, token, "/api/v1/school/change-windows", [window])
    assert again.json()["window_ids"] == [window_id] and again.json()["changed"] == 0
    cancelled = push(
        api,
        token,
        "/api/v1/school/change-windows",
        [{**window, "cancelled": True, "as_of": "2026-08-02T00:00:00Z"}],
    )
    assert cancelled.json()["changed"] == 1

    def projected():
        rows = service_sql(
            "identity",
            "SELECT * FROM change_windows WHERE school_code = %s AND window_id = %s",
            (code, window_id),
        )
        return rows[0] if rows and rows[0]["cancelled"] else None

    found = eventually(projected)
    assert found and sorted(found["fields"]) == ["name", "student_number"]
    backwards = push(
        api,
        token,
        "/api/v1/school/change-windows",
        [{**window, "ends_at": "2026-08-01T00:00:00Z"}],
    )
    assert backwards.status_code == 422
    assert backwards.json()["refused"][0]["field"] == "ends_at"


def test_a_oneroster_import_derives_current_enrolments(api, school, service_sql):
    code, token = school
    state = imported(
        api,
        token,
        zipped(
            {
                "manifest.csv": "propertyName,value\noneroster.version,1.1\n"
                "file.users,bulk\nfile.classes,bulk\nfile.enrollments,bulk\n",
                "users.csv": "sourcedId,status,dateLastModified,enabledUser,"
                "orgSourcedIds,role,username,givenName,familyName,identifier\n"
                "u1,active,2026-09-01,TRUE,org,student,s1,三,张,S1\n",
                "classes.csv": "sourcedId,status,dateLastModified,title,courseSourcedId,"
                "classType,schoolSourcedId,termSourcedIds\n"
                "c1,active,2026-09-01,高等数学,MATH101,scheduled,org,T1\n"
                "h1,active,2026-09-01,七年级1班,,homeroom,org,T1\n",
                "enrollments.csv": "sourcedId,status,dateLastModified,classSourcedId,"
                "schoolSourcedId,userSourcedId,role,metadata.kind\n"
                "e1,active,2026-09-01,c1,org,u1,student,free_elective\n"
                "e2,active,2026-09-01,h1,org,u1,student,\n",
            }
        ),
    )
    assert state["status"] == "succeeded", state
    assert state["progress"]["enrollments"]["kept"] == 2
    found = eventually(lambda: identity_enrollment(service_sql, code, "S1", "MATH101"))
    assert found and found["kind"] == "free_elective" and found["term"] == "T1"
    # The homeroom is the student's class, not a course.
    assert identity_enrollment(service_sql, code, "S1", "h1") is None
