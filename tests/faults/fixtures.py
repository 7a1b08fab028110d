"""What the fault tiers (tests/faults, tests/cluster) load the platform
with, made before each scenario through the gateway."""

import pytest

from tests.e2e.recovery_steps import to_awaiting


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
