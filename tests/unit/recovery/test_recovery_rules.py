"""Recovery's pure rules: the forgot-phone state machine, signed links, who
may vouch, decoy answers, throttles, the review service level."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from services.common.contract.errors import Conflict, Forbidden, NotFound
from services.recovery import domain

NOW = datetime(2026, 12, 2, 4, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=1)
KEY = b"k" * 32


# -- the state machine ------------------------------------------------------------
ALL_STATES = ("matched", "awaiting_vouches", "completed", "cancelled", "expired",
              "failed", "reverted")  # fmt: skip


@pytest.mark.parametrize("step", sorted(domain.STEPS))
@pytest.mark.parametrize("status", ALL_STATES)
def test_a_step_runs_only_from_its_states(step, status):
    allowed = status in domain.STEPS[step] and status != "expired"
    cancel_until = LATER if step == "not_me" else None
    if allowed:
        assert domain.require_step(step, status, LATER, NOW, cancel_until) == status
    else:
        with pytest.raises(Conflict) as refused:
            domain.require_step(step, status, LATER, NOW, cancel_until)
        assert refused.value.code in ("recovery_step_invalid", "recovery_expired")


def test_an_open_flow_past_its_deadline_is_expired_for_every_step():
    for status in domain.OPEN_STATES:
        assert domain.effective_status(status, NOW, NOW) == "expired"
        assert domain.effective_status(status, LATER, NOW) == status
        for step in ("set_new_phone", "vouch", "cancel"):
            with pytest.raises(Conflict) as refused:
                domain.require_step(step, status, NOW, NOW)
            assert refused.value.code == "recovery_expired"
    # A finished flow does not expire into something else.
    assert domain.effective_status("completed", NOW, LATER) == "completed"


def test_not_me_only_inside_the_cancel_window():
    domain.require_step("not_me", "completed", NOW, NOW, cancel_until=LATER)
    with pytest.raises(Conflict) as refused:
        domain.require_step("not_me", "completed", NOW, NOW, cancel_until=NOW)
    assert refused.value.code == "cancel_window_over"


def test_the_second_vouch_completes():
    policy = domain.RecoveryPolicy()
    assert domain.after_vouch(1, policy) == "awaiting_vouches"
    assert domain.after_vouch(2, policy) == "completed"
    assert domain.after_vouch(3, domain.RecoveryPolicy(vouches_needed=3)) == "completed"


# -- signed links ------------------------------------------------------------------
def test_a_link_opens_to_its_flow_until_it_expires():
    flow = uuid.uuid4()
    token = domain.sign_link(KEY, "share", flow, LATER)
    opened, expires = domain.open_link(KEY, "share", token, NOW)
    assert opened == flow and expires == LATER.replace(microsecond=0)
    with pytest.raises(Conflict) as expired:
        domain.open_link(KEY, "share", token, LATER)
    assert expired.value.code == "share_link_expired"
    # Two links of one flow differ (the flow keeps only the last one's hash).
    assert domain.sign_link(KEY, "share", flow, LATER) != token


@pytest.mark.parametrize("position", [0, 10, 20, 30, 40, -1])
def test_a_tampered_link_is_invalid(position):
    token = domain.sign_link(KEY, "share", uuid.uuid4(), LATER)
    chars = list(token)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(NotFound) as refused:
        domain.open_link(KEY, "share", "".join(chars), NOW)
    assert refused.value.code == "share_link_invalid"


def test_a_link_is_bound_to_its_purpose_and_key():
    token = domain.sign_link(KEY, "share", uuid.uuid4(), LATER)
    for key, purpose in ((KEY, "not_me"), (b"x" * 32, "share")):
        with pytest.raises(NotFound):
            domain.open_link(key, purpose, token, NOW)
    for garbage in ("", "abc", "!!!!", "A" * 300):
        with pytest.raises(NotFound):
            domain.open_link(KEY, "share", garbage, NOW)


# -- who may vouch ------------------------------------------------------------------
OLD = NOW - timedelta(days=30)
GOOD_MATES = {
    "classmates": True,
    "same_school": True,
    "same_class": True,
    "account_verified": True,
    "other_verified": True,
    "verified_since": OLD,
}


def facts(**changes):
    base = {
        "requester_id": "a",
        "voucher_id": "b",
        "voucher_status": "active",
        "voucher_created_at": OLD,
        "classmates": dict(GOOD_MATES),
        "already_vouched": False,
    }
    mates = changes.pop("mates", {})
    base.update(changes)
    base["classmates"].update(mates)
    return domain.VoucherFacts(**base)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"voucher_id": "a"}, "self"),
        ({"already_vouched": True}, "already_vouched"),
        ({"voucher_status": "duplicate_pending"}, "voucher_limited"),
        ({"mates": {"account_verified": False}}, "requester_not_verified"),
        ({"mates": {"other_verified": False}}, "voucher_not_verified"),
        ({"mates": {"same_school": False}}, "other_school"),
        ({"mates": {"same_class": False}}, "other_class"),
        ({"mates": {"same_class": None}}, None),  # the registry knows no class
        ({"voucher_created_at": NOW - timedelta(days=6)}, "recently_created"),
        ({"mates": {"verified_since": NOW - timedelta(days=6)}}, "recently_verified"),
        ({"mates": {"verified_since": None}}, "recently_verified"),
        ({"voucher_created_at": NOW - timedelta(days=7)}, None),
    ],
)
def test_voucher_refusals(change, reason):
    assert (
        domain.voucher_refusal(facts(**change), NOW, domain.RecoveryPolicy()) == reason
    )


def test_a_refusal_is_not_eligible_voucher_with_its_reason():
    with pytest.raises(Forbidden) as refused:
        domain.require_voucher_allowed("other_class")
    assert refused.value.code == "not_eligible_voucher"
    assert refused.value.extra == {"reason": "other_class"}
    domain.require_voucher_allowed(None)


@pytest.mark.parametrize(
    "when, term",
    [
        (datetime(2026, 3, 1, tzinfo=timezone.utc), "2026-spring"),
        (datetime(2026, 7, 31, 16, 0, tzinfo=timezone.utc), "2026-autumn"),  # Aug 1 BJ
        (datetime(2026, 12, 2, tzinfo=timezone.utc), "2026-autumn"),
        (datetime(2027, 1, 20, tzinfo=timezone.utc), "2026-autumn"),
    ],
)
def test_term_period_is_the_half_year_without_a_registry_term(when, term):
    assert domain.term_period(when) == term
    assert domain.term_period(when, "2026-T1") == "term:2026-T1"


# -- decoys ---------------------------------------------------------------------------
def test_old_phone_hint_keeps_the_first_three_and_last_two():
    assert domain.old_phone_hint("+8613812345678") == "138****78"
    assert domain.old_phone_hint("13812345678") == "138****78"


def test_decoy_answers_are_stable_and_shaped_like_real_ones():
    digest = bytes(range(32))
    hint = domain.decoy_hint(digest)
    assert hint == domain.decoy_hint(digest)
    assert len(hint) == 9 and hint[3:7] == "****" and hint[:3].isdigit()
    other = domain.decoy_hint(bytes(reversed(range(32))))
    assert other != hint
    methods = domain.decoy_methods(digest, "other", "P123", True)
    assert methods == domain.decoy_methods(digest, "other", "P123", True)
    for method in methods:
        assert method["method"] in ("sms", "email", "questions")
        if method["method"] == "questions":
            assert len(method["questions"]) == 3
        else:
            assert "****" in method["target"] or "***@" in method["target"]


def test_a_decoy_for_a_phone_login_shows_that_phone_like_a_real_answer():
    digest = bytes(32)
    real = domain.real_methods({"phone": "+8613812345678"}, True)
    decoy = domain.decoy_methods(digest, "phone", "+8613812345678", True)
    assert decoy[0] == real[0] == {"method": "sms", "target": "138****5678"}
    email = domain.decoy_methods(digest, "email", "li@x.cn", True)
    assert {"method": "email", "target": "l***@x.cn"} in email


def test_questions_are_offered_only_when_the_policy_allows():
    targets = {"phone": "+8613812345678", "questions": ["q1", "q2", "q3"]}
    assert [m["method"] for m in domain.real_methods(targets, True)] == [
        "sms",
        "questions",
    ]
    assert [m["method"] for m in domain.real_methods(targets, False)] == ["sms"]
    for seed in range(64):
        digest = bytes([seed] * 32)
        methods = domain.decoy_methods(digest, "other", "x", False)
        assert "questions" not in [m["method"] for m in methods]


def test_decoys_vary_the_methods_they_offer():
    kinds = {
        tuple(
            m["method"]
            for m in domain.decoy_methods(bytes([s] * 32), "other", "x", True)
        )
        for s in range(256)
    }
    assert len(kinds) >= 3


# -- throttles and levels -----------------------------------------------------------
def test_throttle_refusal_counts_whole_seconds_up():
    refusal = domain.throttle_refusal(
        domain.MATCH_PER_IP, NOW + timedelta(seconds=1.2), NOW
    )
    assert refusal.code == "too_frequent" and refusal.extra == {"retry_after": 2}
    assert domain.throttle_refusal(domain.MATCH_PER_IP, NOW, NOW) is None
    assert domain.QUESTION_FAILURES.refusal == "method_locked"


def test_daily_cap_resets_at_beijing_midnight():
    refusal = domain.daily_cap_refusal("assistance_daily_limit", NOW, 5)
    assert refusal.extra["resets_at"] == "2026-12-03T00:00:00+08:00"
    assert refusal.extra["limit"] == 5


@pytest.mark.parametrize(
    "created, answer_by",
    [
        (datetime(2026, 12, 2, 4, tzinfo=timezone.utc), "2026-12-04"),  # Wed -> Fri
        (datetime(2026, 12, 4, 4, tzinfo=timezone.utc), "2026-12-08"),  # Fri -> Tue
        (datetime(2026, 12, 5, 4, tzinfo=timezone.utc), "2026-12-08"),  # Sat -> Tue
        (datetime(2026, 12, 4, 17, tzinfo=timezone.utc), "2026-12-08"),  # Sat 01:00 BJ
    ],
)
def test_reviews_promise_two_working_days(created, answer_by):
    level = domain.review_service_level(created)
    assert level["answer_by"] == answer_by
    assert "2" in level["promise_zh"] and "2 working days" in level["promise_en"]


ME = {"account_id": "a", "school_code": "BJ1"}
MATE = {"found": True, "account_id": "b", "status": "active",
        "registry_status": "passed", "school_code": "BJ1"}  # fmt: skip


@pytest.mark.parametrize(
    "change, allowed",
    [
        ({}, True),
        ({"found": False}, False),
        ({"account_id": "a"}, False),
        ({"status": "duplicate_pending"}, False),
        ({"registry_status": "pending"}, False),
        ({"school_code": "BJ2"}, False),
    ],
)
def test_who_may_assist_with_a_duplicate(change, allowed):
    assert domain.classmate_may_assist(ME, {**MATE, **change}) is allowed


def test_no_school_no_assistance():
    assert not domain.classmate_may_assist(
        {"account_id": "a", "school_code": None}, MATE
    )
