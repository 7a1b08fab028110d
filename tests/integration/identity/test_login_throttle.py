"""Login throttling over real RabbitMQ and PostgreSQL with a frozen clock:
the delay grows, lifts by itself, is reset by a success, and the hourly
purge forgets rows that no longer count."""

import uuid
from datetime import datetime, timezone

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook, replace_dependencies

from services.common.contract.errors import Throttled, Unauthenticated
from services.common.plumbing.clock import FakeClock
from services.common.plumbing.testing import random_phone
from services.identity.passwords import new_hasher
from services.identity.service import IdentityService

PASSWORD = "long enough secret"


@pytest.fixture
def identity(container_factory, make_config, db_query):
    config = make_config("identity", ARGON2_MEMORY_KIB=1024, ARGON2_TIME_COST=1)
    container = container_factory(IdentityService, config)
    clock = FakeClock(datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc))
    replace_dependencies(container, "clock").side_effect = clock
    container.start()
    sql = db_query("identity")
    # An account and a proved device, written as registration would.
    account_id, phone = str(uuid.uuid4()), "+86" + random_phone()
    device = "device-" + uuid.uuid4().hex
    sql(
        "INSERT INTO accounts (id, passport_id, status, phone, password_hash,"
        " created_at, updated_at) VALUES (%s, %s, 'active', %s, %s, now(), now())",
        (
            account_id,
            "P" + uuid.uuid4().hex[:12].upper(),
            phone,
            new_hasher(memory_kib=1024, time_cost=1).hash(PASSWORD),
        ),
    )
    sql("INSERT INTO devices VALUES (%s, %s, now(), now())", (account_id, device))
    return config, container, clock, sql, phone, device, account_id


def login(proxy, phone, password, device, ip="10.0.0.1"):
    return proxy.login(
        {"login": phone, "password": password, "device_id": device, "client_ip": ip}
    )


def test_delay_grows_lifts_and_resets(identity):
    config, _, clock, sql, phone, device, account_id = identity
    stranger = "stranger-device"
    with ServiceRpcProxy("identity", config) as proxy:
        for _ in range(5):  # free failures
            with pytest.raises(Unauthenticated):
                login(proxy, phone, "wrong password!", stranger)
        with pytest.raises(Unauthenticated):
            login(proxy, phone, "wrong password!", stranger)  # 6th: blocks 1 s
        with pytest.raises(Throttled) as blocked:
            login(proxy, phone, PASSWORD, stranger)
        assert blocked.value.code == "login_throttled"
        assert blocked.value.extra["retry_after"] == 1
        clock.advance(seconds=1)
        with pytest.raises(Unauthenticated):
            login(proxy, phone, "wrong password!", stranger)  # 7th: 2 s
        with pytest.raises(Throttled) as longer:
            login(proxy, phone, PASSWORD, stranger)
        assert longer.value.extra["retry_after"] == 2
        # Meanwhile the owner's proved device is not held up by the stranger.
        assert login(proxy, phone, PASSWORD, device)["token"]
    # The owner's success reset the account's count.
    rows = sql(
        "SELECT key FROM throttles WHERE key = %s", (f"login-account:{account_id}",)
    )
    assert rows == []


def test_purge_forgets_rows_that_no_longer_count(identity):
    config, container, clock, sql, phone, _, account_id = identity
    keys = (f"login-account:{account_id}", "login-ip:10.9.9.9")

    def rows():
        return sql("SELECT key FROM throttles WHERE key IN %s", (keys,))

    with ServiceRpcProxy("identity", config) as proxy:
        with pytest.raises(Unauthenticated):
            login(proxy, phone, "wrong password!", "x-device", ip="10.9.9.9")
    assert len(rows()) == 2  # the IP and the account
    with entrypoint_hook(container, "purge_expired") as purge:
        purge()
    assert len(rows()) == 2  # still within the window
    clock.advance(hours=25)
    with entrypoint_hook(container, "purge_expired") as purge:
        purge()
    assert rows() == []
