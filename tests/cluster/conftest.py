"""Cluster fault tier: the platform on three RabbitMQ nodes, PostgreSQL
under Patroni and two gateways behind HAProxy (``devtools.cluster``), with
the fault tier's load, fixtures and invariants.

The cluster runs on ports of its own (``ClusterPorts(offset=100)``: the
gateway through HAProxy on :8100) and in a directory of its own, beside the
machine's single RabbitMQ and PostgreSQL and beside a ``make cluster``.
It needs root (the nodes run as the rabbitmq and postgres users) and the
Debian packages ``scripts/ensure-cluster.sh`` installs; without them the
tier stops with the reason — it never skips."""

import os
import shutil

import pytest

from devtools.cluster import Cluster, ClusterPorts
from tests.e2e.conftest import *  # noqa: F403 (the e2e fixtures, on this platform)
from tests.e2e.conftest import platform_env
from tests.faults.fixtures import (  # noqa: F401 (fixtures)
    FAULT_LOAD_ENV,
    accounts,
    databases,
    handlers,
    pending_recoveries,
)

CLUSTER_DIR = os.environ.get(
    "TEST_CLUSTER_DIR", "/var/tmp/student-platform-cluster-tests"
)
NEEDED = ("patroni", "etcd", "haproxy", "prometheus", "promtool")


@pytest.fixture(scope="session")
def cluster_tools():
    """Stops the tier, loudly, without root or the cluster's packages."""
    missing = [cmd for cmd in NEEDED if shutil.which(cmd) is None]
    if missing or os.geteuid() != 0:
        pytest.exit(
            f"cluster tier needs root and {', '.join(missing) or 'nothing else'}: "
            "run `bash scripts/ensure-cluster.sh` (make cluster-faults does)",
            returncode=3,
        )


@pytest.fixture(scope="session")
def cluster(cluster_tools, wechat_key):
    env = platform_env(wechat_key)
    env.pop("IDENTITY_METRICS_PORT")  # the cluster gives every instance its port
    env.update(FAULT_LOAD_ENV)
    running = Cluster(CLUSTER_DIR, ports=ClusterPorts(offset=100), env=env)
    running.start(wait=120)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def platform(cluster):
    running = cluster.platform
    running.amqp_uri = cluster.amqp_uri()
    return running
