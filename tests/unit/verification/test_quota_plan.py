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


def test_all_taken_gives_nothing_back():
    outcome = quota.after_shared(plan(), {"prefix_minute": 3, "ip_hour": 9})
    assert outcome == quota.SharedOutcome(None, ())


@pytest.mark.parametrize(
    "counts, refused, given_back",
    [
        ({"prefix_minute": None, "ip_hour": 9}, "prefix_minute", ["ip_hour"]),
        ({"prefix_minute": 3, "ip_hour": None}, "ip_hour", ["prefix_minute"]),
        ({"prefix_minute": None, "ip_hour": None}, "prefix_minute", []),
    ],
)
def test_a_refused_window_gives_back_what_the_send_took(counts, refused, given_back):
    outcome = quota.after_shared(plan(), counts)
    assert outcome.refused.scope == refused
    assert [w.scope for w in outcome.give_back] == given_back


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
