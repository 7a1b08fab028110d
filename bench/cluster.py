"""What high availability costs: ``send_code`` and logins on the cluster
(``devtools.cluster``: three RabbitMQ nodes with quorum queues, PostgreSQL
under Patroni reached through HAProxy, two gateways behind HAProxy) against
the single-node platform (this machine's RabbitMQ and PostgreSQL, classic
queues, one gateway), both with two instances of every back-end service,
one after the other in the same run, as ratios.

    python -m bench.cluster           # what `make bench-cluster` calls (root)
    python -m bench.cluster --quick

One JSON line per figure (``bench: cluster_cost``), with ``ratio`` =
cluster ÷ single. Load: wrk for code sends (a fresh phone and client
address per request, 32 connections), the Python client for logins (16
clients, one account each, argon2id dominates).
"""

import argparse
import os

from bench.harness import bench_platform, emit
from bench.login import _logins, register_accounts
from bench.run import LOAD_PATH_ENV
from bench.wrk import SEND_CODE_LUA, run_wrk, wrk_available
from devtools.cluster import Cluster, ClusterPorts
from devtools.platform import BACKEND_SERVICES
from services.common.plumbing.testing import TestDatabases, TestVhost, random_ref

BENCH_ENV = {"LOG_LEVEL": "WARNING", **LOAD_PATH_ENV}
INSTANCES = 2


def measure(platform, label, quick):
    """``{figure: {rps, p50_ms, p99_ms, …}}`` of one platform."""
    seconds = 5 if quick else 15
    sends = run_wrk(
        f"{platform.gateway_url}/api/v1/codes", 32, seconds=seconds, lua=SEND_CODE_LUA
    )
    phones, _ = register_accounts(platform, 16 if quick else 32, 8)
    logins = _logins(platform, phones, 16, 200 if quick else 600, warmup=20)
    figures = {"send_code": sends, "login": logins}
    for figure, result in figures.items():
        emit(
            {"bench": "cluster_cost_run", "platform": label, "figure": figure, **result}
        )
    return figures


def single_node(quick):
    vhost = TestVhost().create()
    dbs = TestDatabases(run_id=random_ref("benchc"))
    platform = bench_platform(
        {"AMQP_URI": vhost.amqp_uri, **dbs.env(), **BENCH_ENV},
        "single",
        instances=dict.fromkeys(BACKEND_SERVICES, INSTANCES),
    )
    try:
        platform.start(wait=90)
        return measure(platform, "single", quick)
    finally:
        platform.stop()
        dbs.drop()
        vhost.delete()


def cluster(quick):
    running = Cluster(
        "/var/tmp/student-platform-cluster-bench",
        ports=ClusterPorts(offset=200),
        instances=INSTANCES,
        env=BENCH_ENV,
    )
    try:
        running.start(wait=120)
        return measure(running.platform, "cluster", quick)
    finally:
        running.stop()


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: the cluster's nodes run as rabbitmq and postgres")
    if not wrk_available():
        parser.error("wrk is missing (make bench-cluster installs it)")
    single = single_node(args.quick)
    clustered = cluster(args.quick)
    for figure in ("send_code", "login"):
        one, ha = single[figure], clustered[figure]
        emit(
            {
                "bench": "cluster_cost",
                "figure": figure,
                "single_rps": one["rps"],
                "cluster_rps": ha["rps"],
                "ratio": round(ha["rps"] / one["rps"], 3),
                "single_p99_ms": one["p99_ms"],
                "cluster_p99_ms": ha["p99_ms"],
                "cluster_failed": ha.get("failed", ha.get("non_2xx", 0)),
            }
        )


if __name__ == "__main__":
    main()
