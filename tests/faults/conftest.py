"""Fault tier: the platform with two instances of every back-end service
(and one gateway), under a steady load of real flows, while instances are
killed with SIGKILL and RabbitMQ and PostgreSQL restart under it.

It reuses the e2e tier's fixtures (accounts, schools, codes, enrolled
students) on a platform of its own. It owns the machine's broker and
database while it runs: run it alone (``make faults``; ``make test`` runs
its quick scenarios as its last pytest step)."""

import pytest

from devtools.platform import BACKEND_SERVICES
from tests.e2e.conftest import *  # noqa: F403 (the e2e fixtures, on this platform)
from tests.e2e.conftest import launch_platform
from tests.faults.fixtures import accounts, pending_recoveries  # noqa: F401
from tests.faults.invariants import Databases, load_handlers

INSTANCES = 2


@pytest.fixture(scope="session")
def platform(tmp_path_factory, wechat_key):
    yield from launch_platform(
        tmp_path_factory,
        wechat_key,
        instances=dict.fromkeys(BACKEND_SERVICES, INSTANCES),
        extra_env={
            # The quota burst races 1,000 sends for the day's five: no
            # cooldown, so only the daily limit decides.
            "CODE_RESEND_COOLDOWN_SECONDS": "0",
            "CODE_PREFIX_SENDS_PER_MINUTE": "1000000",
            "CODE_IP_HOURLY_LIMIT": "100000",
            "RPC_TIMEOUT_SECONDS": "5",
        },
    )


@pytest.fixture(scope="session")
def databases(platform):
    db = Databases(platform.env)
    yield db
    db.close()


@pytest.fixture(scope="session")
def handlers(platform):
    found = load_handlers()
    assert len(found) >= 8, found  # the platform's own event flows are all there
    return found
