"""`make run`'s launcher as a user meets it: a taken port stops it before
anything starts, naming the port and its holder; a service that dies is
named with its log and takes the rest down with it; Ctrl-C stops
everything within 5 s."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from nameko.testing.utils import find_free_port

from devtools.platform import ROOT, SERVICES
from services.common.plumbing.testing import TestDatabases, TestVhost


def launcher_env(tmp_path, **extra):
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "GATEWAY_ADDRESS": f"127.0.0.1:{find_free_port()}",
        "CAPTURE_HTTP_PORT": str(find_free_port()),
        "CAPTURE_SMTP_PORT": str(find_free_port()),
        "LOG_DIR": str(tmp_path / "logs"),
        "LOG_LEVEL": "INFO",
    }
    for name in SERVICES:
        if name != "gateway":
            env[f"{name.upper()}_METRICS_PORT"] = str(find_free_port())
    env.update(extra)
    return env


def launch(env, sigint_ignored=False):
    """``sigint_ignored``: started as a shell starts a background job
    (``make run &``), with SIGINT ignored from the start."""
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.platform"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )


def read_until(proc, pattern, timeout=90):
    """Launcher output up to the first line matching ``pattern``."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def infra_env(tmp_path):
    vhost = TestVhost().create()
    databases = TestDatabases()
    env = launcher_env(tmp_path, AMQP_URI=vhost.amqp_uri, **databases.env())
    yield env
    databases.drop()
    vhost.delete()


def test_a_taken_port_stops_the_launch_naming_port_and_holder(tmp_path):
    env = launcher_env(tmp_path)
    metrics_port = int(env["VERIFICATION_METRICS_PORT"])
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", metrics_port))
    squatter.listen()
    try:
        proc = launch(env)
        output, _ = proc.communicate(timeout=60)
    finally:
        squatter.close()
    assert proc.returncode == 1, output
    assert (
        f"port {metrics_port} (verification metrics) is taken by pid {os.getpid()}"
        in (output)
    )
    # Refused before anything started: no service log was even opened.
    assert not list((tmp_path / "logs").glob("*.log"))


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["fg", "bg-job"])
def test_ctrl_c_stops_everything_within_five_seconds(infra_env, sigint_ignored):
    proc = launch(infra_env, sigint_ignored)
    output = read_until(proc, r"^Processes: ")
    pids = [int(p) for p in re.findall(r"pid (\d+)", output.splitlines()[-1])]
    assert len(pids) == len(SERVICES) + 1  # and the capture server
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    assert time.monotonic() - started < 5.0
    assert not [pid for pid in pids if alive(pid)]


def test_a_dying_service_is_named_with_its_log_and_the_rest_stop(infra_env):
    proc = launch(infra_env)
    output = read_until(proc, r"^Processes: ")
    pids = dict(
        (name, int(pid))
        for name, pid in re.findall(r"(\w+) pid (\d+)", output.splitlines()[-1])
    )
    os.kill(pids["verification"], signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "FATAL: verification exited with -9; last lines of" in rest
    assert "verification.log" in rest
    assert not [name for name, pid in pids.items() if alive(pid)], rest
