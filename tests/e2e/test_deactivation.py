"""Deactivation over HTTP: every unmet condition listed and refused, then
granted at once; the phone is free to register again afterwards."""

import uuid
from datetime import datetime, timedelta, timezone

import psycopg2
import psycopg2.extras

NOW = datetime.now(timezone.utc)


def status(api, me):
    answer = api.get("/api/v1/me/deactivation", headers=me["auth"])
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_each_blocker_refuses_then_deactivation_is_immediate(
    api, student, codes, publish, handled, internal_auth, platform
):
    me = student(email=f"d{uuid.uuid4().hex[:8]}@school.edu.cn")
    assert status(api, me) == {"eligible": True, "unmet": []}
    school = "D" + uuid.uuid4().hex[:8].upper()
    assert (
        api.post(
            "/api/v1/me/auth-info",
            json={
                "code": codes("change_auth_info", me["phone"]),
                "school_code": school,
                "student_number": "9001",
            },
            headers=me["auth"],
        ).status_code
        == 200
    )

    # 知点 left (set through the internal endpoint, as the wallet would).
    facts_url = f"/api/v1/internal/accounts/{me['account_id']}/facts"
    no_token = api.put(facts_url, json={"balance_fen": 500, "as_of": NOW.isoformat()})
    assert no_token.status_code == 401
    stored = api.put(
        facts_url,
        json={"balance_fen": 500, "as_of": NOW.isoformat()},
        headers=internal_auth,
    )
    assert stored.status_code == 200, stored.text
    # Courses owned, from the course system's event.
    handled(
        publish(
            "courses",
            "course_ownership_changed",
            {
                "account_id": me["account_id"],
                "owned": [
                    {"course_id": "K1", "kind": "shared"},
                    {"course_id": "K2", "kind": "open"},
                ],
                "as_of": NOW.isoformat(),
            },
        )
    )

    def enrol(course, exam_ended, grades_published, makeup_pending, as_of):
        handled(
            publish(
                "registry_sync",
                "enrollment_changed",
                {
                    "school_code": school,
                    "student_number": "9001",
                    "course_id": course,
                    "term": "2026-autumn",
                    "kind": "free_elective",
                    "exam_ended": exam_ended,
                    "grades_published": grades_published,
                    "makeup_pending": makeup_pending,
                    "as_of": as_of,
                },
            )
        )

    # Credit courses: one unfinished, one without grades, one with a make-up.
    for course, exam_ended, grades, makeup in (
        ("C1", False, False, False),
        ("C2", True, False, False),
        ("C3", True, True, True),
    ):
        enrol(course, exam_ended, grades, makeup, NOW.isoformat())
    report = status(api, me)
    assert report["eligible"] is False
    assert {u["condition"]: u["detail"] for u in report["unmet"]} == {
        "wallet_balance": {"balance_fen": 500},
        "credit_course_unfinished": {"courses": ["C1"]},
        "grades_unpublished": {"courses": ["C2"]},
        "makeup_exam_pending": {"courses": ["C3"]},
        "courses_owned": {"open": ["K2"], "shared": ["K1"]},
    }
    refused = api.post(
        "/api/v1/me/deactivation",
        json={"code": codes("deactivate", me["phone"])},
        headers=me["auth"],
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "not_eligible"
    assert len(refused.json()["unmet"]) == 5

    # Settle everything: balance spent, courses handed over, all finished.
    later = (NOW + timedelta(minutes=1)).isoformat()
    settled = api.put(
        facts_url, json={"balance_fen": 0, "as_of": later}, headers=internal_auth
    )
    assert settled.status_code == 200, settled.text
    handled(
        publish(
            "wallet",
            "wallet_balance_changed",
            {"account_id": me["account_id"], "balance_fen": 0, "as_of": later},
        )
    )
    handled(
        publish(
            "courses",
            "course_ownership_changed",
            {"account_id": me["account_id"], "owned": [], "as_of": later},
        )
    )
    for course in ("C1", "C2", "C3"):
        enrol(course, True, True, False, later)
    assert status(api, me) == {"eligible": True, "unmet": []}
    # The code from the refused attempt was not used: it still works.
    done = api.post(
        "/api/v1/me/deactivation",
        json={"code": codes("deactivate", me["phone"])},
        headers=me["auth"],
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"deactivated": True}

    # Sessions ended, login names released.
    assert api.get("/api/v1/me", headers=me["auth"]).status_code == 401
    for login in (me["phone"], me["email"], me["id_number"], me["passport_id"]):
        answer = api.post(
            "/api/v1/sessions",
            json={"login": login, "password": me["password"]},
            headers={"X-Device-Id": me["device"]},
        )
        assert answer.status_code == 401, (login, answer.text)

    # Personal data erased; an audit record without it kept.
    conn = psycopg2.connect(platform.env["IDENTITY_DB_URI"])
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(
                "SELECT status, phone, email, name, id_number_sealed, id_number_hash,"
                " password_hash FROM accounts WHERE id = %s",
                (me["account_id"],),
            )
            row = cur.fetchone()
            cur.execute(
                "SELECT action, detail::text AS detail FROM audit_log"
                " WHERE account_id = %s ORDER BY id",
                (me["account_id"],),
            )
            audit = cur.fetchall()
    finally:
        conn.close()
    assert row["status"] == "deactivated"
    assert all(row[k] is None for k in row if k != "status")
    assert audit[-1]["action"] == "deactivated"
    assert "sessions_ended" in [a["action"] for a in audit]
    for entry in audit:
        for secret in (me["phone"], me["email"], me["id_number"], me["name"]):
            assert secret not in entry["detail"]

    # The phone and the ID number may register again.
    again = api.post(
        "/api/v1/accounts",
        json={
            "phone": me["phone"],
            "code": codes("register", me["phone"]),
            "password": "another long secret",
            "name": me["name"],
            "id_type": "resident_id",
            "id_number": me["id_number"],
        },
    )
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "active"
    assert again.json()["passport_id"] != me["passport_id"]


def test_an_older_fact_does_not_overwrite_a_newer_one(api, student, internal_auth):
    me = student()
    url = f"/api/v1/internal/accounts/{me['account_id']}/facts"
    newer, older = NOW + timedelta(minutes=5), NOW
    # The newer fact differs from the default (0): it must really be stored.
    stored = api.put(
        url,
        json={"balance_fen": 250, "as_of": newer.isoformat()},
        headers=internal_auth,
    )
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"account_id": me["account_id"]}
    unmet = status(api, me)
    assert unmet["eligible"] is False
    assert {"condition": "wallet_balance", "detail": {"balance_fen": 250}} in unmet[
        "unmet"
    ]
    # An older fact arriving late is accepted (200) but changes nothing.
    late = api.put(
        url,
        json={"balance_fen": 0, "as_of": older.isoformat()},
        headers=internal_auth,
    )
    assert late.status_code == 200, late.text
    assert status(api, me) == unmet
    bad = api.put(
        url, json={"balance_fen": -1, "as_of": NOW.isoformat()}, headers=internal_auth
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
    assert "balance_fen" in bad.json()["errors"]
