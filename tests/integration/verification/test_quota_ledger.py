"""The quota ledger's refusals, read back from the database: what a refused
send leaves behind (nothing of the send's, one failure of the address) and
what an accepted one writes (code, delivery and its outbox event together).

Every test freezes the clock at a time of its own, so the shared windows it
counts (per network, per address) are not touched by the other tests that
share this run's database."""

import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import replace_dependencies

from services.common.contract.errors import Throttled
from services.common.plumbing.clock import FakeClock
from services.verification.service import VerificationService

from .conftest import random_phone


def frozen_verification(container_factory, verification_config, limits):
    """One instance whose clock stands at a random minute of 2031."""
    config = verification_config({"ip_failures_before_captcha": 100, **limits})
    container = container_factory(VerificationService, config)
    clock = FakeClock(
        datetime(2031, 1, 1, tzinfo=timezone.utc)
        + timedelta(minutes=random.randrange(500_000), seconds=5)
    )
    replace_dependencies(container, "clock").side_effect = clock
    container.start()
    return config, clock


def fresh_address():
    return f"10.{random.randrange(250)}.{random.randrange(250)}.{random.randrange(250)}"


def counter(sql, scope, key):
    rows = sql(
        "SELECT coalesce(sum(count), 0) AS n FROM rate_counters"
        " WHERE scope = %s AND key = %s",
        (scope, key),
    )
    return rows[0]["n"]


def issue(proxy, destination, address, channel="sms", **extra):
    return proxy.issue_code(
        {
            "channel": channel,
            "destination": destination,
            "purpose": "register",
            "client_ip": address,
            **extra,
        }
    )


def test_a_full_minute_for_one_network_trips_its_breaker_and_takes_nothing_else(
    container_factory, verification_config, sql
):
    config, clock = frozen_verification(
        container_factory,
        verification_config,
        {"prefix_sends_per_minute": 3, "breaker_open_for": 300},
    )
    # An email domain is a network of its own: no other test sends to it.
    domain = f"{uuid.uuid4().hex[:12]}.example.edu.cn"
    address = fresh_address()
    with ServiceRpcProxy("verification", config) as proxy:
        for n in range(3):
            issue(proxy, f"s{n}@{domain}", address, channel="email")
        with pytest.raises(Throttled) as tripped:
            issue(proxy, f"s3@{domain}", address, channel="email")
        assert tripped.value.code == "sending_suspended"
        assert tripped.value.extra["retry_after"] == 300
        breaker = sql(
            "SELECT open_until FROM breakers WHERE prefix = %s", (f"email:{domain}",)
        )
        assert breaker[0]["open_until"] == clock() + timedelta(seconds=300)
        # The refused send gave its address window back and counted a failure.
        assert counter(sql, "ip_hour", address) == 3
        assert counter(sql, "ip_fail_hour", address) == 1
        # While the breaker is open, the next minute's sends are refused too.
        clock.advance(seconds=60)
        with pytest.raises(Throttled) as suspended:
            issue(proxy, f"s4@{domain}", address, channel="email")
        assert suspended.value.code == "sending_suspended"
        assert suspended.value.extra["retry_after"] == 240
        assert counter(sql, "ip_hour", address) == 3
        clock.advance(seconds=241)
        issue(proxy, f"s5@{domain}", address, channel="email")
    codes = sql(
        "SELECT id, expires_at FROM codes WHERE destination LIKE %s ORDER BY id",
        (f"%@{domain}",),
    )
    assert len(codes) == 4
    events = sql(
        "SELECT payload FROM outbox WHERE event_type = 'code_issued'"
        " AND payload->>'code_id' = ANY(%s)",
        ([str(code["id"]) for code in codes],),
    )
    assert len(events) == 4
    by_id = {event["payload"]["code_id"]: event["payload"] for event in events}
    for code in codes:
        assert (
            datetime.fromisoformat(by_id[code["id"]]["expires_at"])
            == code["expires_at"]
        )
        assert by_id[code["id"]]["destination_masked"].endswith(domain)
    deliveries = sql(
        "SELECT count(*) AS n FROM deliveries WHERE code_id = ANY(%s)",
        ([code["id"] for code in codes],),
    )
    assert deliveries[0]["n"] == 4


def test_a_refused_destination_gives_back_the_address_and_network_windows(
    container_factory, verification_config, sql
):
    config, _ = frozen_verification(container_factory, verification_config, {})
    phone, address = random_phone(), fresh_address()
    with ServiceRpcProxy("verification", config) as proxy:
        issue(proxy, phone, address)
        network_before = counter(sql, "prefix_minute", phone[:6])
        with pytest.raises(Throttled) as refused:
            issue(proxy, phone, address)
    assert refused.value.code == "resend_too_soon"
    assert refused.value.extra["retry_after"] == 60
    assert counter(sql, "prefix_minute", phone[:6]) == network_before
    assert counter(sql, "ip_hour", address) == 1
    assert counter(sql, "ip_fail_hour", address) == 1
    quota = sql(
        "SELECT sent_today FROM destination_quota WHERE destination = %s", (phone,)
    )
    assert [row["sent_today"] for row in quota] == [1]
    codes = sql("SELECT id FROM codes WHERE destination = %s", (phone,))
    assert len(codes) == 1


def test_an_account_at_its_daily_limit_takes_nothing_of_the_destination(
    container_factory, verification_config, sql
):
    config, _ = frozen_verification(
        container_factory, verification_config, {"daily_limit_per_account": 2}
    )
    account, address = f"acct-{uuid.uuid4().hex[:10]}", fresh_address()
    phones = [random_phone() for _ in range(3)]
    with ServiceRpcProxy("verification", config) as proxy:
        for phone in phones[:2]:
            issue(proxy, phone, address, account_id=account)
        with pytest.raises(Throttled) as refused:
            issue(proxy, phones[2], address, account_id=account)
    assert refused.value.code == "account_limit_reached"
    assert "resets_at" in refused.value.extra
    assert counter(sql, "account_day", account) == 2
    assert counter(sql, "ip_hour", address) == 2
    assert counter(sql, "ip_fail_hour", address) == 1
    assert (
        sql("SELECT 1 FROM destination_quota WHERE destination = %s", (phones[2],))
        == []
    )
    assert sql("SELECT 1 FROM codes WHERE destination = %s", (phones[2],)) == []
