"""Restarting this machine's RabbitMQ and PostgreSQL under the platform.

The fault tier owns the machine while it runs (``make faults``, and the
last step of ``make test``): nothing else may be using either server. Each
restart is a real one — the broker node or the database cluster stops,
every connection drops, and it starts again — and returns only when the
server answers again.
"""

import glob
import os
import socket
import subprocess
import time

import requests

from services.common.plumbing.testing import mgmt_auth, mgmt_base


def _run(*argv, timeout=60):
    subprocess.run(
        argv, check=True, timeout=timeout,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def restart_rabbitmq(down_seconds=2.0):
    """Stop the RabbitMQ node (every connection drops), stay down
    ``down_seconds``, start it, and wait for AMQP and the management API."""
    _run("rabbitmqctl", "shutdown")
    time.sleep(down_seconds)
    _run("rabbitmq-server", "-detached")
    # await_startup fails at once while the detached node is still booting
    # its Erlang VM; ask again until it answers.
    deadline = time.monotonic() + 120
    while True:
        try:
            _run("rabbitmqctl", "await_startup", "--timeout", "30", timeout=40)
            break
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    _wait_port(5672)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(
                f"{mgmt_base()}/api/overview", auth=mgmt_auth(), timeout=2
            ).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("RabbitMQ's management API did not come back")


def postgres_version():
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        raise RuntimeError("no PostgreSQL cluster under /etc/postgresql")
    return versions[-1]


def restart_postgres(down_seconds=2.0):
    """Stop the PostgreSQL cluster (fast: sessions are terminated), stay
    down ``down_seconds``, start it, and wait until it accepts connections."""
    version = postgres_version()
    _run(
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        version,
        "main",
        "stop",
        "-m",
        "fast",
    )
    time.sleep(down_seconds)
    _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")
    _wait_port(5432)
    _run("pg_isready", "-h", "127.0.0.1", "-p", "5432", "-t", "30")
