"""Faults under load on the cluster (issue #22 §3): the fault tier's
steady load and burst on ``devtools.cluster`` (three RabbitMQ nodes with
quorum queues, PostgreSQL under Patroni, two gateways behind HAProxy, two
instances of every service), while one part at a time dies:

* ``kill -9`` of the RabbitMQ node leading the busiest quorum queues, then
  it comes back and rejoins;
* a rolling restart: each RabbitMQ node stopped cleanly and started, in turn;
* ``kill -9`` of the PostgreSQL primary (Patroni and its postmaster):
  Patroni promotes the replica, the old primary rejoins as a replica;
* ``kill -9`` of one gateway: HAProxy routes around it;
* ``kill -9`` of one instance of each back-end service.

After each, the fault tier's invariants (tests/faults/invariants.py) and,
per scenario, what the fault cost: seconds from the fault until every flow
succeeded again, the requests that failed meanwhile with their codes, and
the p99 latency of the requests sent during it. Those figures are printed
and appended to ``.artifacts/cluster-faults.jsonl``.
"""

import json
import time
from pathlib import Path

import pytest

from services.common.plumbing.testing import random_phone, wait_until
from tests.faults.invariants import (
    events_handled_exactly_once,
    every_request_answered,
    outbox_drained,
    quota_exact,
    recoveries_completed_once,
    registered_accounts_exist,
    registrations_exactly_once,
    roster_pushes_exactly_once,
    vouches_exactly_once,
)
from tests.faults.load import Load, burst_sends, summary

ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
FLOWS = ("register", "login", "send_code", "roster")


# -- faults --------------------------------------------------------------------
def busiest_node(cluster):
    """The node leading the most of the busiest quorum queues: the RPC
    queues of identity and verification, which every flow of the load uses."""
    queues = cluster.broker_api("/queues/selfservice")
    leaders = {}
    for queue in queues:
        if queue.get("type") != "quorum":
            continue
        weight = 3 if queue["name"] in ("rpc-identity", "rpc-verification") else 1
        leader = queue.get("leader") or queue.get("node")
        leaders[leader] = leaders.get(leader, 0) + weight
    name = max(leaders, key=leaders.get)
    return next(n for n in range(1, 4) if cluster.node_name(n) == name)


def rejoined(cluster, node):
    cluster.wait_rabbit(node, timeout=120)
    wait_until(
        lambda: len(cluster.running_nodes()) == 3,
        timeout=120, interval=1, message="all three RabbitMQ nodes running",
    )  # fmt: skip


def kill_busiest_rabbit(cluster):
    node = busiest_node(cluster)
    cluster.kill(f"rabbit-c{node}")
    time.sleep(5)  # down long enough for every client to notice
    cluster.restart(f"rabbit-c{node}")
    rejoined(cluster, node)
    return {"node": cluster.node_name(node)}


def rolling_restart_rabbits(cluster):
    for node in (1, 2, 3):
        cluster.stop_rabbit(node)
        cluster.restart(f"rabbit-c{node}")
        rejoined(cluster, node)
    return {}


def kill_postgres_primary(cluster):
    old = cluster.primary()
    assert old in (1, 2)
    cluster.kill(f"pg{old}")
    new = 3 - old
    wait_until(
        lambda: cluster.primary() == new,
        timeout=90, interval=0.5, message=f"pg{new} promoted",
    )  # fmt: skip
    cluster.restart(f"pg{old}")
    wait_until(
        lambda: cluster.member_role(old) == ("replica", "running"),
        timeout=120, interval=1, message=f"pg{old} back as a replica",
    )  # fmt: skip
    return {"old_primary": f"pg{old}", "new_primary": f"pg{new}"}


def kill_gateway(cluster):
    platform = cluster.platform
    platform.kill("gateway-2")
    time.sleep(3)
    platform.restart("gateway-2")
    wait_until(
        lambda: cluster.gateway_instance_healthy(2),
        timeout=60, interval=0.5, message="gateway-2 healthy again",
    )  # fmt: skip
    return {}


def kill_one_of_each_service(cluster):
    platform = cluster.platform
    killed = ("identity", "verification-2", "recovery", "registry_sync-2")
    for process in killed:
        assert platform.kill(process) == -9
    time.sleep(2)
    for process in killed:
        platform.restart(process)
    for process in killed:
        platform.wait_connected(process, timeout=60)
    return {"killed": list(killed)}


SCENARIOS = {
    # The one `make test` runs: the node most of the work goes through.
    "kill-9 busiest RabbitMQ node": (kill_busiest_rabbit, True),
    "rolling restart of RabbitMQ": (rolling_restart_rabbits, False),
    "kill-9 PostgreSQL primary": (kill_postgres_primary, False),
    "kill-9 a gateway": (kill_gateway, False),
    "kill-9 one instance of each service": (kill_one_of_each_service, False),
}


# -- what a fault cost ---------------------------------------------------------
def cost(outcomes, fault_at, fault_done_at):
    """Seconds until every flow succeeded again after the fault began, the
    requests sent during it that failed (5xx or no answer), and the p99 of
    what was sent during it."""
    during = [o for o in outcomes if fault_at <= o.at <= fault_done_at]
    back = {}
    for o in sorted(outcomes, key=lambda o: o.at):
        if o.at >= fault_at and o.acknowledged and o.flow in FLOWS:
            back.setdefault(o.flow, o.at + o.elapsed - fault_at)
    failed = {}
    for o in during:
        if o.status == 0 or o.status >= 500:
            key = f"{o.status}/{o.code or '-'}"
            failed[key] = failed.get(key, 0) + 1
    latencies = sorted(o.elapsed for o in during)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
    return {
        "fault_seconds": round(fault_done_at - fault_at, 1),
        "seconds_until_every_flow_succeeded": round(max(back.values()), 2)
        if len(back) == len(FLOWS)
        else None,
        "requests_during": len(during),
        "failed_during": failed,
        "p99_during_seconds": round(p99, 2) if p99 is not None else None,
    }


def record(scenario, figures):
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "cluster-faults.jsonl", "a") as out:
        out.write(
            json.dumps({"scenario": scenario, "at": time.time(), **figures}) + "\n"
        )


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(name, marks=[pytest.mark.quick_fault] if quick else [])
        for name, (_, quick) in SCENARIOS.items()
    ],
)
def test_cluster_keeps_its_promises_through(
    scenario, cluster, platform, api, databases, handlers, accounts, school,
    pending_recoveries,
):  # fmt: skip
    fault, _ = SCENARIOS[scenario]
    flows, vouch_jobs = pending_recoveries
    load = Load(platform.gateway_url, platform.capture_url, accounts, school,
                vouch_jobs).start(workers=6)  # fmt: skip
    time.sleep(3)  # steady before the fault
    burst_phone = random_phone("133")
    burst, senders = burst_sends(platform.gateway_url, burst_phone)
    time.sleep(0.5)  # the burst is under way when the fault strikes

    fault_at = time.monotonic()
    details = fault(cluster)
    fault_done_at = time.monotonic()
    wait_until(
        lambda: api.get("/health").status_code == 200,
        timeout=90, interval=0.5, message="the platform healthy again",
    )  # fmt: skip
    recovered_at = time.monotonic()
    for sender in senders:
        sender.join(180)
    time.sleep(4)  # the load goes on after the fault
    outcomes = load.stop()

    after = {o.flow for o in outcomes if o.at > recovered_at and o.acknowledged}
    violations = [
        f"no {flow} succeeded after the fault" for flow in FLOWS if flow not in after
    ]
    violations += every_request_answered(outcomes + burst.outcomes)
    violations += outbox_drained(databases)
    violations += events_handled_exactly_once(databases, handlers)
    violations += registrations_exactly_once(databases, outcomes)
    violations += roster_pushes_exactly_once(databases, outcomes)
    violations += vouches_exactly_once(databases, outcomes)
    violations += recoveries_completed_once(databases, flows)
    violations += registered_accounts_exist(databases)
    violations += quota_exact(
        databases, platform.capture_url, burst_phone, burst.outcomes
    )
    figures = {
        **details,
        **cost(outcomes + burst.outcomes, fault_at, fault_done_at),
        "summary": summary(outcomes + burst.outcomes),
        "violations": len(violations),
    }
    record(scenario, figures)
    print(f"\n[{scenario}] {json.dumps(figures, ensure_ascii=False)}")
    assert not violations, f"{scenario}: {figures}\n" + "\n".join(violations[:40])


@pytest.mark.quick_fault
def test_cluster_baseline_without_a_fault(
    cluster, platform, api, databases, handlers, accounts, school,
    pending_recoveries,
):  # fmt: skip
    """The same load and checks with no fault, on the cluster."""
    flows, jobs = pending_recoveries
    load = Load(platform.gateway_url, platform.capture_url, accounts, school,
                jobs).start(workers=6)  # fmt: skip
    time.sleep(6)
    outcomes = load.stop()
    violations = every_request_answered(outcomes)
    violations += outbox_drained(databases)
    violations += events_handled_exactly_once(databases, handlers)
    violations += registrations_exactly_once(databases, outcomes)
    violations += vouches_exactly_once(databases, outcomes)
    violations += recoveries_completed_once(databases, flows)
    assert sum(o.acknowledged for o in outcomes) > 20, summary(outcomes)
    assert not violations, "\n".join(violations)
