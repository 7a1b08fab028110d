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
from tests.faults.fixtures import (  # noqa: F401 (fixtures)
    FAULT_LOAD_ENV,
    accounts,
    databases,
    handlers,
    pending_recoveries,
)

INSTANCES = 2


@pytest.fixture(scope="session")
def platform(tmp_path_factory, wechat_key):
    yield from launch_platform(
        tmp_path_factory,
        wechat_key,
        instances=dict.fromkeys(BACKEND_SERVICES, INSTANCES),
        extra_env=FAULT_LOAD_ENV,
    )
