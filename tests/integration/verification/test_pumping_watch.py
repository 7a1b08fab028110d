"""The pumping watch in a real verification container, on real RabbitMQ
and PostgreSQL: its verdicts become suspensions that sends answer with
``sending_suspended``; two instances judge once; the country allowlist."""

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.errors import RuleViolation, Throttled
from services.common.plumbing.testing import wait_until

from .conftest import random_phone

FAST = {
    "PUMPING_MIN_VOLUME": 6,
    "PUMPING_GRACE_SECONDS": 0,
    "PUMPING_CHECK_SECONDS": 0.2,
    "PUMPING_WINDOW_SECONDS": 60,
}


def issue(proxy, phone, client_ip="198.51.100.7"):
    return proxy.issue_code(
        {
            "channel": "sms",
            "destination": phone,
            "purpose": "register",
            "client_ip": client_ip,
        }
    )


def test_a_pumped_segment_is_suspended_once_across_two_instances(
    start_verification, sql
):
    config, _ = start_verification(instances=2, **FAST)
    segment = "+86170009" + "9"  # +86 and 7 digits
    with ServiceRpcProxy("verification", config) as proxy:
        for n in range(6):
            issue(proxy, f"{segment}{n:04d}", client_ip=f"203.0.{n}.1")

        probes = iter(range(9000, 9999))

        def refused():
            try:  # a new number each time: no cooldown in the way
                issue(proxy, f"{segment}{next(probes)}", client_ip="192.0.2.1")
            except Throttled as exc:
                return exc
            return None

        refusal = wait_until(refused, timeout=10, message="the segment suspended")
        assert refusal.code == "sending_suspended"
        assert 1 <= refusal.extra["retry_after"] <= 300
        # Other segments still send.
        issue(proxy, random_phone(), client_ip="192.0.2.1")
    rows = sql(
        "SELECT scope, key, level, figures FROM sms_suspensions"
        " WHERE key = %s OR key LIKE '203.0.%%'",
        (segment,),
    )
    # Judged by one instance: one row, once (the upsert and the lock); the
    # rotating networks sent one code each, too few to judge.
    assert [(r["scope"], r["key"], r["level"]) for r in rows] == [
        ("segment", segment, 1)
    ]
    assert rows[0]["figures"]["sent"] >= 6 and rows[0]["figures"]["verified"] == 0


def test_verified_codes_keep_a_busy_segment_open(start_verification, sql, capture):
    from .conftest import code_in

    config, _ = start_verification(**FAST)
    segment = "+86170008" + "8"
    with ServiceRpcProxy("verification", config) as proxy:
        for n in range(8):
            phone = f"{segment}{n:04d}"
            issue(proxy, phone)
            message = wait_until(
                lambda phone=phone: capture.messages(phone), message="the code"
            )
            proxy.check_code(
                {
                    "destination": phone,
                    "purpose": "register",
                    "code": code_in(message[0]),
                }
            )
        import time

        time.sleep(1.0)  # several checks of the watch
        issue(proxy, f"{segment}9999")
    assert (
        sql(
            "SELECT count(*) AS n FROM sms_suspensions WHERE key IN (%s, %s)",
            (segment, "198.51.100.0/24"),
        )[0]["n"]
        == 0
    )


def test_sms_to_a_country_outside_the_allowlist_is_refused(start_verification):
    config, _ = start_verification(SMS_ALLOWED_COUNTRY_CODES="852,853")
    with ServiceRpcProxy("verification", config) as proxy:
        with pytest.raises(RuleViolation) as refused:
            issue(proxy, random_phone())
    assert refused.value.code == "country_not_allowed"
