"""What the fault tiers (tests/faults, tests/cluster) load the platform
with, made before each scenario through the gateway."""

import pytest

from tests.e2e.recovery_steps import to_awaiting
from tests.faults.invariants import Databases, load_handlers

# What both fault tiers run the platform with, beyond the e2e tier's.
FAULT_LOAD_ENV = {
    # The quota burst races 1,000 sends for the day's five: no cooldown,
    # so only the daily limit decides.
    "CODE_RESEND_COOLDOWN_SECONDS": "0",
    "CODE_PREFIX_SENDS_PER_MINUTE": "1000000",
    "CODE_IP_HOURLY_LIMIT": "100000",
    "RPC_TIMEOUT_SECONDS": "5",
}


@pytest.fixture(scope="session")
def databases(platform):
    """One autocommit connection per service database of the platform."""
    db = Databases(platform.env)
    yield db
    db.close()


@pytest.fixture(scope="session")
def handlers(platform):
    """Every reliable handler of the platform and the event it takes."""
    found = load_handlers()
    assert len(found) >= 8, found  # the platform's own event flows are all there
    return found


@pytest.fixture
def pending_recoveries(api, codes, school, enrolled):
    """Two phone recoveries awaiting their two vouches, with the vouchers:
    ``(flows, vouch jobs)`` for the load."""
    vouchers = [enrolled(school, name=n) for n in ("甲一", "乙二")]
    flows, jobs = [], []
    for _ in range(2):
        who = enrolled(school, name="丁四", aged=False)
        flow, share, new_phone = to_awaiting(api, codes, who)
        flows.append(
            {"recovery_id": flow["recovery_id"], "account_id": who["account_id"],
             "new_phone": new_phone}
        )  # fmt: skip
        for voucher in vouchers:
            jobs.append((voucher, share, flow["recovery_id"]))
    return flows, jobs


@pytest.fixture
def accounts(student):
    return [
        {"phone": who["phone"], "password": who["password"], "device": who["device"]}
        for who in (student(login=False) for _ in range(3))
    ]
