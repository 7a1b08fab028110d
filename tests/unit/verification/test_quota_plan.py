"""The quota ledger as a plan (services/verification/quota.py) and the one
channel/destination rule every caller of issue_code meets. No broker, no
database: the store only executes what these decide."""

from datetime import datetime, timedelta, timezone

import pytest

from services.common.contract.errors import InvalidRequest, RuleViolation
from services.verification import domain, quota

NOW = datetime(2026, 12, 6, 5, 30, 17, tzinfo=timezone.utc)
POLICY = domain.policy_for("default")


def plan(account_id="acc-1", address="203.0.113.7", purpose="register"):
    return quota.plan_send(
        purpose, "+8613812345678", account_id, address, "+86138", NOW, POLICY
    )


def test_a_send_takes_the_prefix_then_the_address_then_its_own_counters():
    p = plan()
    assert [w.scope for w in p.shared] == ["prefix_minute", "ip_hour"]
    assert p.shared[0].start == NOW.replace(second=0)
    assert p.shared[1].start == NOW.replace(minute=0, second=0)
    assert p.shared[1].limit == POLICY.hourly_limit_per_ip
    assert (p.budget, p.daily_limit) == ("open", POLICY.daily_limit_per_destination)
    assert p.cooldown_edge == NOW - POLICY.resend_cooldown
    assert p.account.scope == "account_day" and p.account.key == "acc-1"
    assert plan(purpose="change_phone").budget == "account"


def test_no_address_and_no_account_take_nothing_of_theirs():
    p = plan(account_id=None, address=None)
    assert [w.scope for w in p.shared] == ["prefix_minute"] and p.account is None


def test_a_sent_code_answers_no_refusal():
    sent = quota.SendOutcome(refused=None, code_id=7, sent_today=1)
    assert quota.refusal_of(sent, plan(), NOW, POLICY) is None


@pytest.mark.parametrize(
    "outcome, code, extra",
    [
        (quota.SendOutcome("captcha_required"), "captcha_required", {}),
        (
            quota.SendOutcome("suspended", open_until=NOW + timedelta(seconds=42)),
            "sending_suspended",
            {"retry_after": 42},
        ),
        (
            quota.SendOutcome("prefix_minute", open_until=NOW + timedelta(minutes=5)),
            "sending_suspended",
            {"retry_after": 300},
        ),
        (quota.SendOutcome("ip_hour"), "ip_limit_reached", {"retry_after": 1783}),
        (
            quota.SendOutcome("destination", last_sent_at=NOW - timedelta(seconds=15)),
            "resend_too_soon",
            {"retry_after": 45},
        ),
        (
            quota.SendOutcome("account"),
            "account_limit_reached",
            {"resets_at": "2026-12-07T00:00:00+08:00"},
        ),
    ],
)
def test_each_refused_step_answers_its_own_error(outcome, code, extra):
    refusal = quota.refusal_of(outcome, plan(), NOW, POLICY)
    assert (refusal.code, refusal.extra) == (code, extra)


def test_an_unknown_step_is_a_bug_not_a_send():
    with pytest.raises(ValueError):
        quota.refusal_of(quota.SendOutcome("moon_phase"), plan(), NOW, POLICY)


def test_the_plan_carries_the_gate_and_the_breaker():
    p = plan()
    assert p.prefix.scope == "prefix_minute" and p.address.scope == "ip_hour"
    assert plan(address=None).address is None
    assert p.fail_window == NOW.replace(minute=0, second=0)
    assert p.captcha_after == POLICY.ip_failures_before_captcha
    assert p.breaker_until == NOW + POLICY.breaker_open_for


def test_each_refusal_says_when_to_come_back():
    p = plan()
    prefix = quota.shared_refusal(p.shared[0], NOW, POLICY)
    assert prefix.code == "sending_suspended"
    assert prefix.extra["retry_after"] == int(POLICY.breaker_open_for.total_seconds())
    ip = quota.shared_refusal(p.shared[1], NOW, POLICY)
    assert (ip.code, ip.extra["retry_after"]) == (
        "ip_limit_reached",
        3600 - 30 * 60 - 17,
    )
    assert quota.suspended_refusal(NOW + timedelta(seconds=5), NOW).extra == {
        "retry_after": 5
    }
    assert quota.suspended_refusal(NOW, NOW) is None
    account = quota.send_refusal("account", None, NOW, POLICY)
    assert account.code == "account_limit_reached"
    cooling = quota.send_refusal("destination", {"last_sent_at": NOW}, NOW, POLICY)
    assert cooling.code == "resend_too_soon"


@pytest.mark.parametrize(
    "channel, destination, code",
    [
        ("sms", "12345", "phone_invalid"),
        ("sms", "not@an", "phone_invalid"),
        ("email", "foo@bar", "email_invalid"),
    ],
)
def test_a_malformed_destination_is_refused_for_its_channel(channel, destination, code):
    with pytest.raises(InvalidRequest) as refused:
        domain.checked_destination(channel, destination)
    assert refused.value.code == code
    assert refused.value.extra == {"errors": {"destination": [code]}}


@pytest.mark.parametrize(
    "channel, destination",
    [("sms", "student@example.edu.cn"), ("email", "13812345678")],
)
def test_a_destination_for_the_other_channel_is_a_mismatch(channel, destination):
    with pytest.raises(RuleViolation) as refused:
        domain.checked_destination(channel, destination)
    assert refused.value.code == "destination_channel_mismatch"


def test_a_good_destination_is_normalised():
    assert domain.checked_destination("sms", "138 1234 5678") == "+8613812345678"
    assert domain.checked_destination("email", "A@Example.EDU") == "A@example.edu"
