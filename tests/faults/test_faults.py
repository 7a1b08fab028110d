"""Faults under load (issue #12): with two instances of every back-end
service, one instance of each is killed with SIGKILL mid-load and started
again; RabbitMQ and PostgreSQL are restarted while the load runs. After
each, every promise is checked as queries over the services' databases:

* every request got a success or a documented error — no 500, no hang;
* every acknowledged change (account, roster entry, vouch) is there exactly
  once, and an unacknowledged one at most once;
* a recovery whose vouches are in completed and was applied exactly once;
* every outbox event was published, and each handler handled exactly the
  events published for it — none missing, none twice, none invented (an
  event of a rolled-back change would be one), none parked;
* 1,000 concurrent sends to one phone during the fault issued exactly 5
  codes and delivered exactly 5 messages;
* after the fault the platform serves every flow again.
"""

import time

import pytest

from tests.faults import infra
from tests.faults.invariants import (
    after_a_fault,
    events_handled_exactly_once,
    every_request_answered,
    outbox_drained,
    recoveries_completed_once,
    registrations_exactly_once,
    vouches_exactly_once,
)
from tests.faults.load import Load, ScenarioRun, summary


def kill_and_restart(process):
    def fault(platform):
        killed = platform.processes[process].pid
        # SIGKILL: no goodbye to the broker or the database.
        assert platform.kill(process) == -9
        time.sleep(2)
        platform.restart(process)
        platform.wait_connected(process, timeout=60)
        assert platform.processes[process].pid != killed

    return fault


def restart(server):
    def fault(platform):
        getattr(infra, f"restart_{server}")()

    return fault


SCENARIOS = {
    # Alternate instances: the first, then the second one of a service.
    "kill-9 identity": (kill_and_restart("identity"), True),
    "kill-9 verification-2": (kill_and_restart("verification-2"), False),
    "kill-9 recovery": (kill_and_restart("recovery"), False),
    "kill-9 registry_sync-2": (kill_and_restart("registry_sync-2"), False),
    "restart RabbitMQ": (restart("rabbitmq"), True),
    "restart PostgreSQL": (restart("postgres"), False),
}


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(name, marks=[pytest.mark.quick_fault] if quick else [])
        for name, (_, quick) in SCENARIOS.items()
    ],
)
def test_platform_keeps_its_promises_through(
    scenario, platform, api, databases, handlers, accounts, school,
    pending_recoveries,
):  # fmt: skip
    fault, _ = SCENARIOS[scenario]
    run = ScenarioRun(platform, accounts, school, pending_recoveries)
    fault(platform)
    run.finish(api, healthy_within=60)
    violations = after_a_fault(databases, handlers, platform.capture_url, run)
    said = summary(run.everything)
    print(f"\n[{scenario}] {said}")
    assert not violations, f"{scenario}: {said}\n" + "\n".join(violations[:40])


@pytest.mark.quick_fault
def test_baseline_the_same_load_and_checks_without_a_fault(
    platform, api, databases, handlers, accounts, school, pending_recoveries
):
    """The baseline: the same load and checks with no fault (so a check that
    fails under a fault is the fault's doing, not the harness's)."""
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
