"""The identity domain without a broker: lock rules as a table, deactivation
conditions, throttles, login names, the login decision, security answers."""

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.contract.errors import InvalidRequest, RuleViolation
from services.identity import domain

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
EXAM_END = NOW + timedelta(days=20)
WINDOW_START = NOW + timedelta(days=5)
RULE1 = ("school_code", "name", "student_number")


def course(kind, exam_ended=False, exam_ends_at=None, dropped=False, **extra):
    return {
        "course_id": extra.pop("course_id", "C1"),
        "kind": kind,
        "exam_ended": exam_ended,
        "exam_ends_at": exam_ends_at,
        "grades_published": extra.pop("grades_published", exam_ended),
        "makeup_pending": extra.pop("makeup_pending", False),
        "dropped": dropped,
    }


def window(fields, starts_at, ends_at, cancelled=False):
    return {
        "fields": list(fields),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "cancelled": cancelled,
    }


OPEN_NOW = window(RULE1, NOW - timedelta(hours=1), NOW + timedelta(hours=1))
OPEN_NAME_ONLY = window(["name"], NOW - timedelta(hours=1), NOW + timedelta(hours=1))
LATER = window(RULE1, WINDOW_START, WINDOW_START + timedelta(days=2))
PAST = window(RULE1, NOW - timedelta(days=3), NOW - timedelta(days=2))
CANCELLED = window(RULE1, NOW - timedelta(hours=1), NOW + timedelta(hours=1), True)

ARRANGED = course("school_arranged", exam_ends_at=EXAM_END)
ARRANGED_UNKNOWN_END = course("school_arranged")
ARRANGED_EXAM_OVER = course("school_arranged", exam_ended=True)
ARRANGED_DROPPED = course("school_arranged", dropped=True)
ELECTIVE = course("free_elective", exam_ends_at=EXAM_END, course_id="E1")
ELECTIVE_OVER = course("free_elective", exam_ended=True, course_id="E1")

L, S = False, True  # locked, changeable
# (enrollments, windows) -> school, name, student number, department, year
LOCK_TABLE = [
    ([], [], (S, S, S, S, S)),
    ([ARRANGED], [], (L, L, L, S, S)),
    ([ARRANGED], [OPEN_NOW], (S, S, S, S, S)),
    ([ARRANGED], [OPEN_NAME_ONLY], (L, S, L, S, S)),
    ([ARRANGED], [LATER], (L, L, L, S, S)),
    ([ARRANGED], [PAST], (L, L, L, S, S)),
    ([ARRANGED], [CANCELLED], (L, L, L, S, S)),
    ([ARRANGED_EXAM_OVER], [], (S, S, S, S, S)),
    ([ARRANGED_DROPPED], [], (S, S, S, S, S)),
    ([ELECTIVE], [], (L, S, S, S, S)),
    ([ELECTIVE], [OPEN_NOW], (L, S, S, S, S)),
    ([ELECTIVE_OVER], [], (S, S, S, S, S)),
    ([ARRANGED, ELECTIVE], [OPEN_NOW], (L, S, S, S, S)),
    ([ARRANGED, ELECTIVE], [], (L, L, L, S, S)),
]


@pytest.mark.parametrize("enrollments, windows, expected", LOCK_TABLE)
def test_lock_rules_table(enrollments, windows, expected):
    permissions = domain.auth_info_permissions(enrollments, windows, NOW)
    fields = ("school_code", "name", "student_number", "department", "enrollment_year")
    assert tuple(permissions[f]["changeable"] for f in fields) == expected


def test_reasons_and_unlock_times():
    p = domain.auth_info_permissions([ARRANGED], [], NOW)
    assert p["name"] == {
        "changeable": False,
        "reason": "school_arranged_course",
        "reasons": ["school_arranged_course"],
        "unlocks_at": EXAM_END,
    }
    # A window opening before the exam ends unlocks earlier.
    assert domain.auth_info_permissions([ARRANGED], [LATER], NOW)["name"][
        "unlocks_at"
    ] == (WINDOW_START)
    # Exam end unknown and no window: unknown.
    assert (
        domain.auth_info_permissions([ARRANGED_UNKNOWN_END], [], NOW)["name"][
            "unlocks_at"
        ]
        is None
    )
    # Two locks on the school: it unlocks when both lift (the later one).
    later_elective = course(
        "free_elective", exam_ends_at=EXAM_END + timedelta(days=9), course_id="E2"
    )
    school = domain.auth_info_permissions([ARRANGED, later_elective], [], NOW)[
        "school_code"
    ]
    assert school["reasons"] == ["school_arranged_course", "free_elective_unfinished"]
    assert school["unlocks_at"] == EXAM_END + timedelta(days=9)


def test_locked_fields_lists_only_the_requested_locked_ones():
    p = domain.auth_info_permissions([ELECTIVE], [], NOW)
    assert domain.locked_fields(p, ["name", "department"]) == []
    assert domain.locked_fields(p, ["school_code", "name"]) == [
        {
            "field": "school_code",
            "reason": "free_elective_unfinished",
            "unlocks_at": EXAM_END,
        }
    ]


@pytest.mark.parametrize(
    "changed, reset",
    [
        (["name"], True),
        (["school_code"], True),
        (["student_number", "department"], True),
        (["department"], False),
        (["enrollment_year", "department"], False),
    ],
)
def test_registry_goes_back_to_pending_for_school_name_or_number(changed, reset):
    assert domain.registry_reset_needed(changed) is reset


# -- deactivation -----------------------------------------------------------------


def test_deactivation_conditions_each_listed():
    enrollments = [
        course("free_elective", course_id="A"),
        course(
            "school_arranged", exam_ended=True, grades_published=False, course_id="B"
        ),
        course("school_arranged", exam_ended=True, makeup_pending=True, course_id="C"),
        course("school_arranged", dropped=True, course_id="D"),
        course("school_arranged", exam_ended=True, course_id="E"),
    ]
    owned = [
        {"course_id": "K2", "kind": "flipped"},
        {"course_id": "K1", "kind": "flipped"},
        {"course_id": "K3", "kind": "interest"},
    ]
    assert domain.deactivation_unmet(1, enrollments, owned) == [
        {"condition": "wallet_balance", "detail": {"balance_fen": 1}},
        {"condition": "credit_course_unfinished", "detail": {"courses": ["A"]}},
        {"condition": "grades_unpublished", "detail": {"courses": ["B"]}},
        {"condition": "makeup_exam_pending", "detail": {"courses": ["C"]}},
        {
            "condition": "courses_owned",
            "detail": {"flipped": ["K1", "K2"], "interest": ["K3"]},
        },
    ]


def test_deactivation_allowed_when_everything_is_settled():
    finished = [course("school_arranged", exam_ended=True, grades_published=True)]
    assert domain.deactivation_unmet(0, finished, []) == []
    assert domain.deactivation_unmet(0, [], []) == []


# -- throttles ------------------------------------------------------------------


def test_login_delay_grows_and_is_capped_never_permanent():
    policy = domain.LOGIN_PER_ACCOUNT
    delays = [policy.block_after(n).total_seconds() for n in range(1, 20)]
    assert delays[:5] == [0] * 5
    assert delays[5:9] == [1, 2, 4, 8]
    assert max(delays) == 15 * 60
    assert domain.USERNAME_RECOVERY_PER_ID.block_after(5) == timedelta(hours=1)
    assert domain.USERNAME_RECOVERY_PER_ID.block_after(4) == timedelta(0)


def test_throttle_refusal_only_while_blocked():
    policy = domain.LOGIN_PER_IP
    assert domain.throttle_refusal(policy, None, NOW) is None
    assert domain.throttle_refusal(policy, NOW, NOW) is None
    refusal = domain.throttle_refusal(policy, NOW + timedelta(seconds=2.2), NOW)
    assert refusal.code == "login_throttled" and refusal.extra["retry_after"] == 3


# -- login names and the login decision ----------------------------------------------


@pytest.mark.parametrize(
    "raw, kind, value",
    [
        ("13812345678", "phone", "+8613812345678"),
        ("+86 138-1234-5678", "phone", "+8613812345678"),
        ("Zhang.San@School.EDU.cn", "email", "Zhang.San@school.edu.cn"),
        ("p7kq2m9xht4ca", "passport", "P7KQ2M9XHT4CA"),
        # ID numbers in their one canonical spelling (issue #20 §4).
        ("11010519491231002x", "id_number", "11010519491231002X"),
        ("110105 491231 002", "id_number", "11010519491231002X"),
    ],
)
def test_classify_login(raw, kind, value):
    assert domain.classify_login(raw) == (kind, value)


def test_empty_login_is_malformed():
    with pytest.raises(InvalidRequest):
        domain.classify_login("  ")


def test_id_number_candidates_normalise_per_type():
    today = date(2026, 11, 24)
    candidates = domain.id_number_candidates("110105491231002", today)
    assert ("resident_id", "11010519491231002X") in candidates
    assert all(number != "" for _, number in candidates)


def test_login_decision():
    account = {"phone": "+8613812345678", "guardian_phone": None}
    assert domain.login_decision(account, True, False).outcome == "session"
    sent = domain.login_decision(account, False, False)
    assert (sent.outcome, sent.code_destination) == (
        "send_device_code",
        "+8613812345678",
    )
    assert domain.login_decision(account, False, True).outcome == "check_device_code"
    child = {"phone": None, "guardian_phone": "+8613912345678"}
    assert domain.login_decision(child, False, False).code_destination == (
        "+8613912345678"
    )
    with pytest.raises(RuleViolation) as caught:
        domain.login_decision({"phone": None, "guardian_phone": None}, False, False)
    assert caught.value.code == "no_bound_phone"


# -- school data and security questions -------------------------------------------


def test_school_data_rules():
    assert domain.check_school_code(" bj101 ") == "BJ101"
    assert domain.check_student_number("2024a17") == "2024A17"
    assert domain.check_enrollment_year(2027, date(2026, 11, 24)) == 2027
    for bad, check in (
        ("x", domain.check_school_code),
        ("学号", domain.check_student_number),
        ("", domain.check_department),
    ):
        with pytest.raises(RuleViolation):
            check(bad)
    with pytest.raises(RuleViolation):
        domain.check_enrollment_year(2028, date(2026, 11, 24))


def test_answers_normalise_case_width_space_punctuation_and_script():
    assert domain.normalise_answer(" 北京 实验小学！") == domain.normalise_answer(
        "北京實驗小學"
    )
    assert domain.normalise_answer("Ｌｕｃｋｙ!") == "lucky"


@given(st.text(min_size=1, max_size=30))
def test_answer_normalisation_is_idempotent(text):
    once = domain.normalise_answer(text)
    assert domain.normalise_answer(once) == once


def test_security_questions_need_three_different_ones():
    good = [
        {"question": "Q1?", "answer": "aa"},
        {"question": "Q2?", "answer": "bb"},
        {"question": "Q3?", "answer": "cc"},
    ]
    assert [q for q, _ in domain.check_security_questions(good)] == [
        "Q1?",
        "Q2?",
        "Q3?",
    ]
    with pytest.raises(RuleViolation) as same:
        domain.check_security_questions([good[0]] * 3)
    assert same.value.code == "questions_invalid"
    with pytest.raises(RuleViolation) as short:
        domain.check_security_questions([*good[:2], {"question": "Q3?", "answer": "!"}])
    assert short.value.code == "answer_too_short"


def test_masked_login_names():
    account = {
        "passport_id": "P7KQ2M9XHT4CA",
        "phone": "+8613812345678",
        "email": "zhang@school.edu.cn",
    }
    assert domain.masked_login_names(account, "11010519491231002X") == [
        {"kind": "passport_id", "value": "P7KQ2M9XHT4CA"},
        {"kind": "phone", "value": "138****5678"},
        {"kind": "email", "value": "z***@school.edu.cn"},
        {"kind": "id_number", "value": "110***********002X"},
    ]


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_masked_phone_keeps_only_its_ends(phone):
    names = domain.masked_login_names(
        {"passport_id": "P", "phone": "+86" + phone}, None
    )
    masked = names[1]["value"]
    assert masked == phone[:3] + "****" + phone[-4:]
    assert len(masked) == 11 and masked[3:7] == "****"


def test_a_login_shaped_like_an_address_or_number_but_invalid_is_unknown():
    from services.identity.domain import classify_login

    assert classify_login("a@\u00a0'x") == ("unknown", "a@'x")
    assert classify_login("12012345678")[0] == "unknown"  # not a real mobile range
    assert classify_login(" li.si@School.edu.cn ") == ("email", "li.si@school.edu.cn")
    assert classify_login("13812345678") == ("phone", "+8613812345678")
