"""Authentication-info changes under the school's rules, driven through the
API, with enrolments and change windows arriving as registry_sync events."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from services.common.plumbing.testing import wait_until

NOW = datetime.now(timezone.utc)


@pytest.fixture
def enrolled(api, student, codes, publish):
    """A student with a school and student number, and a helper to publish
    their enrolments and their school's change windows."""
    me = student()
    school = "S" + uuid.uuid4().hex[:8].upper()
    set_up = api.post(
        "/api/v1/me/auth-info",
        json={
            "code": codes("change_auth_info", me["phone"]),
            "school_code": school,
            "student_number": "2023001",
            "department": "计算机学院",
            "enrollment_year": 2023,
        },
        headers=me["auth"],
    )
    assert set_up.status_code == 200, set_up.text
    me["school_code"] = school

    def enrol(kind, exam_ended=False, exam_ends_at=None, course=None, as_of=NOW):
        payload = {
            "school_code": school,
            "student_number": "2023001",
            "course_id": course or "C-" + uuid.uuid4().hex[:6],
            "term": "2026-autumn",
            "kind": kind,
            "exam_ended": exam_ended,
            "exam_ends_at": exam_ends_at.isoformat() if exam_ends_at else None,
            "grades_published": exam_ended,
            "as_of": as_of.isoformat(),
        }
        event_id = publish("registry_sync", "enrollment_changed", payload)
        return payload["course_id"], event_id

    def window(fields, starts_at, ends_at):
        publish(
            "registry_sync",
            "change_window_changed",
            {
                "school_code": school,
                "window_id": "W-" + uuid.uuid4().hex[:6],
                "fields": fields,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
                "as_of": NOW.isoformat(),
            },
        )

    me["enrol"], me["window"] = enrol, window
    return me


def permissions(api, me):
    answer = api.get("/api/v1/me/auth-info/permissions", headers=me["auth"])
    assert answer.status_code == 200, answer.text
    return answer.json()["fields"]


def wait_for(api, me, field, changeable):
    return wait_until(
        lambda: (
            permissions(api, me)[field]["changeable"] is changeable
            and permissions(api, me)
        ),
        message=f"{field} changeable={changeable}",
    )


def change(api, me, codes, **fields):
    return api.post(
        "/api/v1/me/auth-info",
        json={"code": codes("change_auth_info", me["phone"]), **fields},
        headers=me["auth"],
    )


def test_everything_may_change_without_courses(api, enrolled, codes):
    assert all(p["changeable"] for p in permissions(api, enrolled).values())
    changed = change(api, enrolled, codes, name="王大明", enrollment_year=2022)
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "changed": ["enrollment_year", "name"],
        "registry_status": "pending",
    }
    profile = api.get("/api/v1/me", headers=enrolled["auth"]).json()
    assert profile["name"] == "王大明" and profile["enrollment_year"] == 2022


def test_school_arranged_course_locks_school_name_number_until_exam_ends(
    api, enrolled, codes
):
    exam_end = NOW + timedelta(days=30)
    course, _ = enrolled["enrol"]("school_arranged", exam_ends_at=exam_end)
    fields = wait_for(api, enrolled, "name", False)
    for field in ("school_code", "name", "student_number"):
        assert fields[field]["changeable"] is False
        assert fields[field]["reason"] == "school_arranged_course"
        assert datetime.fromisoformat(fields[field]["unlocks_at"]) == exam_end
    assert fields["department"]["changeable"] is True
    assert fields["enrollment_year"]["changeable"] is True

    refused = change(api, enrolled, codes, name="王大明", department="数学学院")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "field_locked"
    assert [f["field"] for f in refused.json()["locked_fields"]] == ["name"]
    assert refused.json()["locked_fields"][0]["reason"] == "school_arranged_course"
    # What is not locked may change (the refused request changed nothing).
    allowed = change(api, enrolled, codes, department="数学学院")
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["changed"] == ["department"]

    # The exam ends (a newer push): everything unlocks.
    enrolled["enrol"](
        "school_arranged",
        exam_ended=True,
        course=course,
        as_of=NOW + timedelta(seconds=5),
    )
    wait_for(api, enrolled, "name", True)
    assert change(api, enrolled, codes, name="王大明").status_code == 200


def test_a_stale_push_does_not_undo_a_newer_one(api, enrolled, handled):
    course, newer = enrolled["enrol"](
        "school_arranged", exam_ended=False, as_of=NOW + timedelta(seconds=10)
    )
    handled(newer)
    assert permissions(api, enrolled)["name"]["changeable"] is False
    # An older push of the same course (exam ended) arrives late: ignored.
    _, stale = enrolled["enrol"](
        "school_arranged", exam_ended=True, course=course, as_of=NOW
    )
    handled(stale)
    assert permissions(api, enrolled)["name"]["changeable"] is False


def test_a_change_window_opens_the_locked_fields_it_names(api, enrolled, codes):
    enrolled["enrol"]("school_arranged")  # exam end unknown
    fields = wait_for(api, enrolled, "student_number", False)
    assert fields["student_number"]["unlocks_at"] is None
    # A future window: still locked, and it says when it opens.
    opens = NOW + timedelta(days=3)
    enrolled["window"](["student_number"], opens, opens + timedelta(days=7))
    fields = wait_until(
        lambda: permissions(api, enrolled)["student_number"]["unlocks_at"],
        message="unlocks_at from the window",
    )
    assert datetime.fromisoformat(fields) == opens
    # An open window naming student_number (only): that field may change.
    enrolled["window"](
        ["student_number"], NOW - timedelta(hours=1), NOW + timedelta(days=1)
    )
    fields = wait_for(api, enrolled, "student_number", True)
    assert fields["name"]["changeable"] is False
    assert fields["school_code"]["changeable"] is False
    changed = change(api, enrolled, codes, student_number="2023999")
    assert changed.status_code == 200, changed.text
    assert changed.json()["registry_status"] == "pending"


def test_unfinished_free_elective_locks_only_the_school(api, enrolled, codes):
    enrolled["enrol"]("free_elective")
    fields = wait_for(api, enrolled, "school_code", False)
    assert fields["school_code"]["reason"] == "free_elective_unfinished"
    assert all(
        fields[f]["changeable"]
        for f in ("name", "student_number", "enrollment_year", "department")
    )
    refused = change(api, enrolled, codes, school_code="OTHER01")
    assert refused.status_code == 422
    assert refused.json()["locked_fields"][0]["field"] == "school_code"
    assert change(api, enrolled, codes, student_number="2023002").status_code == 200


def test_a_wrong_code_changes_nothing(api, enrolled):
    answer = api.post(
        "/api/v1/me/auth-info",
        json={"code": "000000", "name": "王大明"},
        headers=enrolled["auth"],
    )
    assert answer.status_code == 422
    assert answer.json()["code"] in ("code_invalid", "code_expired")
    assert api.get("/api/v1/me", headers=enrolled["auth"]).json()["name"] == "王小明"
