"""SMS pumping by conversion: segments and networks, the tally, the
verdict and how long a suspension lasts (pumping.py, no broker)."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.verification import pumping

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=timezone.utc)
SETTINGS = pumping.PumpingSettings()


def row(destination, ip="203.0.113.9", verified=False, delivered=True, age=120):
    return {
        "destination": destination,
        "client_ip": ip,
        "issued_at": NOW - timedelta(seconds=age),
        "verified": verified,
        "delivered": delivered,
    }


@pytest.mark.parametrize(
    ("phone", "segment"),
    [
        ("+8613812345678", "+861381234"),
        ("+8619912340000", "+861991234"),
        ("+85291234567", "+852"),
        ("+85361234567", "+853"),
        ("+886912345678", "+886"),
        ("+14155550100", "+1"),
        ("+447700900123", "+44"),
    ],
)
def test_segment_of(phone, segment):
    assert pumping.segment_of(phone) == segment


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.9", "203.0.113.0/24"),
        ("203.0.113.250", "203.0.113.0/24"),
        ("2001:db8:1:2::5", "2001:db8:1::/48"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),
        ("", None),
        (None, None),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_network_of(ip, network):
    assert pumping.network_of(ip) == network


def test_allowed_countries_default_to_mainland_hk_macau_taiwan():
    for phone in ("+8613812345678", "+85291234567", "+85361234567", "+886912345678"):
        assert pumping.is_allowed_country(phone, SETTINGS)
    for phone in ("+14155550100", "+447700900123", "+8821234567"):
        assert not pumping.is_allowed_country(phone, SETTINGS)


def test_tally_counts_by_segment_and_network():
    rows = [
        row("+8613812340001", verified=True),
        row("+8613812340002"),
        row("+8613912340003", ip="198.51.100.7", delivered=False),
    ]
    figures = pumping.tally(rows)
    assert figures[("segment", "+861381234")] == pumping.Figures(2, 2, 1)
    assert figures[("segment", "+861391234")] == pumping.Figures(1, 0, 0)
    assert figures[("network", "203.0.113.0/24")] == pumping.Figures(2, 2, 1)
    assert figures[("network", "198.51.100.0/24")] == pumping.Figures(1, 0, 0)


def test_tally_skips_codes_before_a_keys_last_suspension_ended():
    rows = [row("+8613812340001", age=300), row("+8613812340002", age=100)]
    ended = {("segment", "+861381234"): NOW - timedelta(seconds=200)}
    figures = pumping.tally(rows, ended)
    assert figures[("segment", "+861381234")].sent == 1
    assert figures[("network", "203.0.113.0/24")].sent == 2


def test_tally_counts_no_segment_for_a_code_without_its_destination():
    # The watch counts +86 segments in SQL and hands tally the rest without
    # their destination: those codes count for their network alone.
    figures = pumping.tally([row(None, ip="198.51.100.7")])
    assert figures == {("network", "198.51.100.0/24"): pumping.Figures(1, 1, 0)}


def test_merge_counted_adds_the_keys_counted_in_sql_to_the_tally():
    tallied = pumping.tally([row("+85291234567"), row(None, verified=True)])
    counted = [
        {"scope": "segment", "key": "+861381234", "sent": 40, "delivered": 30,
         "verified": 2},
        {"scope": "network", "key": "203.0.113.0/24", "sent": 10, "delivered": 9,
         "verified": 1},
    ]  # fmt: skip
    assert pumping.merge_counted(counted, tallied) == {
        ("segment", "+852"): pumping.Figures(1, 1, 0),
        ("segment", "+861381234"): pumping.Figures(40, 30, 2),
        ("network", "203.0.113.0/24"): pumping.Figures(12, 11, 2),
    }
    assert tallied[("network", "203.0.113.0/24")] == pumping.Figures(2, 2, 1)


def pumped(sent, verified=0):
    return pumping.Figures(sent=sent, delivered=sent, verified=verified)


def test_pumping_needs_volume_surge_and_a_low_verified_share():
    at = SETTINGS.min_volume
    assert pumping.is_pumping(pumped(at), 0.0, SETTINGS)
    assert not pumping.is_pumping(pumped(at - 1), 0.0, SETTINGS)  # too few
    # a registration day: most codes verified
    assert not pumping.is_pumping(pumped(500, verified=400), 0.0, SETTINGS)
    # just under / at the share threshold
    assert pumping.is_pumping(pumped(100, verified=19), 0.0, SETTINGS)
    assert not pumping.is_pumping(pumped(100, verified=20), 0.0, SETTINGS)
    # a segment that usually sends this much is not surging
    assert not pumping.is_pumping(pumped(60), 20.0, SETTINGS)
    assert pumping.is_pumping(pumped(61), 20.0, SETTINGS)


def test_suspension_doubles_from_five_minutes_to_twelve_hours():
    lengths = [pumping.suspension_length(level, SETTINGS) for level in range(1, 11)]
    assert lengths[:4] == [timedelta(minutes=m) for m in (5, 10, 20, 40)]
    assert lengths[-1] == timedelta(hours=12)
    assert all(a <= b for a, b in zip(lengths, lengths[1:], strict=False))


def test_repeat_within_a_day_goes_up_a_level_after_a_quiet_day_starts_over():
    assert pumping.next_level(None, None, NOW, SETTINGS) == 1
    assert pumping.next_level(2, NOW - timedelta(hours=3), NOW, SETTINGS) == 3
    assert pumping.next_level(5, NOW - timedelta(hours=25), NOW, SETTINGS) == 1


def test_judge_gives_a_verdict_with_its_length_and_level():
    previous = {"level": 1, "tripped_at": NOW - timedelta(minutes=30)}
    verdict = pumping.judge(
        "segment", "+861381234", pumped(40), 0.5, previous, NOW, SETTINGS
    )
    assert verdict.level == 2 and verdict.suspend_for == timedelta(minutes=10)
    assert pumping.judge("segment", "k", pumped(5), 0.0, None, NOW, SETTINGS) is None


def test_baseline_is_the_mean_per_window_before_this_one():
    # 23 h 50 min before the judged 10 minutes: 143 windows.
    assert pumping.baseline_per_window(143 * 4, SETTINGS) == pytest.approx(4.0)


def test_retry_after_rounds_up_and_is_at_least_a_second():
    assert pumping.retry_after(NOW + timedelta(seconds=2.1), NOW) == 3
    assert pumping.retry_after(NOW, NOW) == 1


def test_settings_from_config_strings():
    settings = pumping.settings_from(
        {
            "PUMPING_WINDOW_SECONDS": "60",
            "PUMPING_MIN_VOLUME": "8",
            "PUMPING_VERIFIED_SHARE": "0.3",
            "SMS_ALLOWED_COUNTRY_CODES": "86, +852",
        }
    )
    assert settings.window == timedelta(seconds=60) and settings.min_volume == 8
    assert settings.verified_share == 0.3
    assert settings.allowed_country_codes == ("86", "852")
    assert settings.grace == SETTINGS.grace
    assert pumping.settings_from(
        {"SMS_ALLOWED_COUNTRY_CODES": 86}
    ).allowed_country_codes == ("86",)
    assert (
        pumping.settings_from({}).allowed_country_codes
        == SETTINGS.allowed_country_codes
    )


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # segment
            st.integers(0, 2),  # network
            st.booleans(),
        ),
        max_size=60,
    )
)
def test_tally_counts_every_code_once_per_key(codes):
    rows = [
        row(f"+86138000{s}{n:04d}", ip=f"10.0.{net}.1", verified=v)
        for n, (s, net, v) in enumerate(codes)
    ]
    figures = pumping.tally(rows)
    segments = [f for (scope, _), f in figures.items() if scope == "segment"]
    networks = [f for (scope, _), f in figures.items() if scope == "network"]
    assert sum(f.sent for f in segments) == len(rows) == sum(f.sent for f in networks)
    assert sum(f.verified for f in segments) == sum(v for *_, v in codes)
