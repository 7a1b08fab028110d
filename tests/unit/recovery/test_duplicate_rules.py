"""Duplicate-ID rules of recovery's domain (issue #20 §2): who may assist,
and how many must before an ID number moves."""

from datetime import datetime, timedelta, timezone

import pytest

from services.recovery import domain

# -- a helper passes a voucher's guards (issue #20 §2) ----------------------------------
NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
POLICY = domain.RecoveryPolicy(voucher_min_age=timedelta(days=7), vouches_needed=2)


def helper_facts(**overrides):
    base = dict(
        requester_id="r", requester_school="S1", requester_class="一班",
        helper_id="h", helper_status="active",
        helper_created_at=NOW - timedelta(days=30), helper_verified=True,
        helper_school="S1", helper_class="一班",
        helper_verified_since=NOW - timedelta(days=30), already_helped=False,
    )  # fmt: skip
    return domain.HelperFacts(**{**base, **overrides})


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({}, None),
        ({"helper_id": "r"}, "self"),
        ({"already_helped": True}, "already_vouched"),
        ({"helper_status": "duplicate_pending"}, "voucher_limited"),
        ({"helper_verified": False}, "voucher_not_verified"),
        ({"helper_school": "S2"}, "other_school"),
        ({"requester_school": None}, "other_school"),
        ({"helper_class": "二班"}, "other_class"),
        ({"helper_class": None}, None),  # class unknown on one side
        ({"helper_created_at": NOW - timedelta(days=6)}, "recently_created"),
        ({"helper_verified_since": NOW - timedelta(days=1)}, "recently_verified"),
        ({"helper_verified_since": None}, "recently_verified"),
    ],
)
def test_a_helper_passes_the_guards_a_voucher_passes(overrides, reason):
    assert domain.helper_refusal(helper_facts(**overrides), NOW, POLICY) == reason


def test_as_many_helpers_as_vouches_move_an_id_number():
    assert not domain.move_ready(1, POLICY)
    assert domain.move_ready(2, POLICY)
