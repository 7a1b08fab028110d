"""``make cluster`` as a user runs it (``python -m devtools.cluster``, here
on ports moved by 300 so it cannot meet another cluster): it comes up,
prints every address, serves ``/health`` through HAProxy, and Ctrl-C stops
all of it within 10 s, leaving nothing listening, no broker namespace and
no process behind. Runs first in ``make cluster-faults`` (its own cluster,
before the tier's)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from devtools.cluster import NODES, BrokerNet, ClusterPorts
from devtools.platform import METRICS_PORTS

ROOT = Path(__file__).resolve().parents[2]
OFFSET = 300


def listening(port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_cluster_comes_up_and_ctrl_c_stops_all_of_it_within_ten_seconds(
    cluster_tools,
):
    ports = ClusterPorts(offset=OFFSET)
    net = BrokerNet(ports)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.cluster",
         "--dir", "/var/tmp/student-platform-cluster-cli",
         "--port-offset", str(OFFSET)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = []
    deadline = time.monotonic() + 300
    try:
        for line in proc.stdout:
            output.append(line)
            if (
                line.startswith("Ctrl-C stops everything")
                or time.monotonic() > deadline
            ):
                break
        text = "".join(output)
        assert "Cluster up." in text, text[-3000:]
        for address in (
            f"http://127.0.0.1:{ports.gateway}",
            f"http://127.0.0.1:{ports.haproxy_stats}/stats",
            f"http://127.0.0.1:{ports.prometheus}",
            f"{net.node_ip(1)}:5672",
        ):
            assert address in text
        health = requests.get(f"http://127.0.0.1:{ports.gateway}/health", timeout=10)
        assert health.status_code == 200, health.text
        assert {n for n in re.findall(r"netns (sp\d+-rmq\d)", text)} == {
            net.namespace(n) for n in range(1, NODES + 1)
        }

        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        stopped_in = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = proc.stdout.read()
    assert stopped_in < 10, rest
    assert "[cluster] stopped in" in rest
    ours = {
        ports.gateway, ports.gateway_instance(1), ports.gateway_instance(2),
        ports.haproxy_stats, ports.prometheus, ports.postgres_primary,
        ports.capture_http, ports.capture_smtp, *ports.listening(),
        *(ports.service_metrics(s, k) for s in METRICS_PORTS for k in (1, 2)),
    }  # fmt: skip
    assert sorted(p for p in ours if listening(p)) == []
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert net.tag + "-" not in namespaces
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    assert net.bridge not in links
    left = [
        pid for pid in os.listdir("/proc") if pid.isdigit()
        and "student-platform-cluster-cli" in _cmdline(pid)
    ]  # fmt: skip
    assert left == []


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
