"""Start the whole platform on this machine: migrations, the SMS/email
capture server and all five services, one ``nameko run`` process each.

    python -m devtools.platform                  # what `make run` calls; Ctrl-C stops all
    python -m devtools.platform --instances 2    # two of every back-end service
    python -m devtools.platform --instances verification=3,identity=2
    PLATFORM_INSTANCES=2 make run                # the same, from the environment

Instances of one service share its RPC and event queues (competing
consumers): that is how the platform scales out, here as in Kubernetes.
Instance k > 1 of a service runs as ``<service>-<k>``, logs to its own
file, and serves its metrics on the service's port + 10·(k-1).

Before anything starts, every port the platform will listen on is checked;
a taken one stops the launch with its number and the process holding it.
A service that exits, during start-up or later, is named with the last
lines of its log, and the rest are stopped: never a half-running platform
(the launcher exits 1; restarting is left to a supervisor in production).
Stopping sends SIGTERM to every process at once and SIGKILL to what is
still there after ``STOP_GRACE_SECONDS``, so Ctrl-C returns within 5 s.

The end-to-end tests use ``Platform`` with their own vhost, databases and
ports, so they run exactly what a user runs.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from services.common.contract.vocabulary import BACKEND_SERVICES

__all__ = [
    "Platform",
    "SERVICES",
    "BACKEND_SERVICES",
    "PlatformError",
    "parse_instances",
    "port_holder",
    "log_tail",
]

ROOT = Path(__file__).resolve().parent.parent
# The gateway listens on one address; the others scale by sharing queues.
SERVICES = (*BACKEND_SERVICES, "gateway")
METRICS_PORT_STRIDE = 10
# Where `make run` exposes each back-end service's Prometheus metrics.
METRICS_PORTS = {
    "identity": 9101,
    "verification": 9102,
    "recovery": 9103,
    "registry_sync": 9104,
}


STOP_GRACE_SECONDS = 3.0


def parse_instances(text):
    """``{service: count}`` from ``"2"`` (every back-end service) or
    ``"verification=3,identity=2"``; unnamed services run once."""
    counts = dict.fromkeys(BACKEND_SERVICES, 1)
    text = (text or "").strip()
    if not text:
        return counts
    if text.isdigit():
        return dict.fromkeys(BACKEND_SERVICES, _instance_count(text))
    for part in text.split(","):
        name, sep, count = part.strip().partition("=")
        if not sep or name not in BACKEND_SERVICES:
            raise PlatformError(
                f"--instances: {part.strip()!r} is not <service>=<count> with one "
                f"of {', '.join(BACKEND_SERVICES)}"
            )
        counts[name] = _instance_count(count)
    return counts


def _instance_count(text):
    if not text.strip().isdigit() or not 1 <= int(text) <= 16:
        raise PlatformError(f"--instances: {text!r} is not a count from 1 to 16")
    return int(text)


class PlatformError(RuntimeError):
    """The platform cannot start or lost a service; the message says why."""


def _listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def port_holder(port):
    """``"pid 1234 (python3 -m nameko run ...)"`` listening on ``port``, or
    ``None`` when it cannot be told (another user's process, no /proc)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                    return f"pid {proc.name} ({cmdline.decode(errors='replace').strip()[:120]})"
        except OSError:
            continue
    return None


def port_free(port, host="127.0.0.1"):
    """Whether a server could listen on ``port`` now. SO_REUSEADDR as the
    servers themselves set it: connections of a stopped run lingering in
    TIME_WAIT do not count, a live listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path, lines=15):
    """The last ``lines`` lines of a log file (what to show when it died)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Platform:
    """The running platform: child processes and where to reach them."""

    def __init__(
        self,
        env=None,
        log_dir=None,
        gateway_address="127.0.0.1:8000",
        capture_http_port=8025,
        capture_smtp_port=1025,
        with_capture=True,
        instances=None,
        gateway_addresses=None,
        instance_env=None,
    ):
        self.instances = {**dict.fromkeys(BACKEND_SERVICES, 1), **(instances or {})}
        # Several gateways (``make cluster``): each listens on its own
        # address and a load balancer serves ``gateway_address``.
        self.gateway_addresses = list(gateway_addresses or [gateway_address])
        self.instances["gateway"] = len(self.gateway_addresses)
        # ``instance_env(service, instance) -> dict``: what one process gets
        # beyond the shared environment (the cluster spreads broker nodes).
        self.instance_env = instance_env or (lambda service, instance: {})
        self.env = {**os.environ, **(env or {})}
        self.env["GATEWAY_ADDRESS"] = gateway_address
        self.env.setdefault("PYTHONWARNINGS", "ignore")
        # This launcher is for development and tests: it says so, and the
        # services accept their shipped development keys (never in deploy/).
        self.env.setdefault("DEVELOPMENT_MODE", "true")
        # argon2's 19 MiB per hash would stay in per-thread malloc arenas,
        # and (glibc's mmap threshold rising to 19 MiB) in the heap: see
        # deploy/Dockerfile. identity keeps one buffer per hashing thread on
        # purpose (keep_hash_memory_resident).
        self.env.setdefault("MALLOC_ARENA_MAX", "2")
        self.env.setdefault("MALLOC_MMAP_THRESHOLD_", "1048576")
        self.gateway_url = f"http://{gateway_address}"
        # Links in messages (share, "not me") point at this gateway, and a
        # development run serves pages over plain HTTP on loopback.
        self.env.setdefault("PUBLIC_BASE_URL", self.gateway_url)
        self.env.setdefault("WEB_COOKIE_SECURE", "false")
        self.capture_url = f"http://127.0.0.1:{capture_http_port}"
        self.capture_ports = (capture_http_port, capture_smtp_port)
        if with_capture:  # the verification service delivers to the capture server
            self.env.setdefault("SMS_HTTP_URL", f"{self.capture_url}/api/sms")
            self.env.setdefault("SMTP_PORT", str(capture_smtp_port))
            self.env.setdefault(
                "CAPTCHA_CAPTURE_URL", f"{self.capture_url}/api/captcha"
            )
        self.with_capture = with_capture
        self.log_dir = Path(log_dir or ROOT / ".run" / "logs")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes = {}
        self.log_marks = {}

    def _spawn(self, name, argv, env=None):
        log = open(self.log_dir / f"{name}.log", "ab")
        # Where this run's lines start (a restarted process appends).
        self.log_marks[name] = log.tell()
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = proc
        return proc

    def migrate(self):
        subprocess.run(
            [sys.executable, "-m", "services.common.plumbing.migrate", "--all"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )

    @staticmethod
    def process_name(name, instance=None):
        return name if instance in (None, 1) else f"{name}-{instance}"

    def metrics_port(self, name, instance=None):
        """Where instance ``instance`` of ``name`` serves metrics (0: nowhere)."""
        base = int(self.env.get(f"{name.upper()}_METRICS_PORT") or 0)
        if not base:
            return 0
        return base + METRICS_PORT_STRIDE * ((instance or 1) - 1)

    def start_service(self, name, instance=None):
        """One ``nameko run`` of service ``name``; ``instance`` names another
        one of the same service (``recovery-2``), which shares its queues."""
        env = dict(self.instance_env(name, instance or 1))
        if name == "gateway":
            env["GATEWAY_ADDRESS"] = self.gateway_addresses[(instance or 1) - 1]
        if name in METRICS_PORTS:
            env[f"{name.upper()}_METRICS_PORT"] = str(self.metrics_port(name, instance))
        return self._spawn(
            self.process_name(name, instance),
            [
                sys.executable,
                "-m",
                "nameko",
                "run",
                "--config",
                f"services/{name}/config.yml",
                f"services.{name}.service",
            ],
            env,
        )

    def kill(self, process, sig=signal.SIGKILL):
        """Signal one process (``"verification-2"``) without forgetting it:
        the fault tests kill -9 an instance, then ``restart`` it."""
        proc = self.processes[process]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait()
        return proc.returncode

    def restart(self, process):
        """Start ``process`` (``"identity"`` or ``"identity-2"``) again."""
        name, _, instance = process.partition("-")
        self.processes.pop(process, None)
        return self.start_service(name, int(instance) if instance else None)

    def stop_service(self, name, sig=signal.SIGTERM, timeout=STOP_GRACE_SECONDS):
        proc = self.processes.pop(name, None)
        if proc is None:
            return
        self._stop_all({name: proc}, sig, timeout)

    @staticmethod
    def _stop_all(processes, sig=signal.SIGTERM, grace=STOP_GRACE_SECONDS):
        """Signal every process group at once; SIGKILL what outlives ``grace``."""
        for proc in processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in processes.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                pass
        for proc in processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def ports(self):
        """``{port: what}`` of every port this platform will listen on."""
        wanted = {}
        for k, address in enumerate(self.gateway_addresses, 1):
            wanted[int(address.rpartition(":")[2])] = self.process_name("gateway", k)
        if self.with_capture:
            http_port, smtp_port = self.capture_ports
            wanted[int(http_port)] = "capture (HTTP)"
            wanted[int(smtp_port)] = "capture (SMTP)"
        for name in BACKEND_SERVICES:
            for instance in range(1, self.instances[name] + 1):
                port = self.metrics_port(name, instance)
                if port:
                    wanted[port] = f"{self.process_name(name, instance)} metrics"
        return wanted

    def check_ports(self):
        """Refuse to start when any port is taken, naming it and its holder."""
        taken = taken_ports(self.ports())
        if taken:
            raise PlatformError(
                "cannot start: " + "; ".join(taken) + ". Stop it (an earlier "
                "`make run` still shutting down?) or choose other ports."
            )

    def died(self):
        """``(name, returncode)`` of the first child that has exited, or None."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def death_report(self, name, returncode):
        log = self.log_dir / f"{name}.log"
        return f"{name} exited with {returncode}; last lines of {log}:\n" + log_tail(
            log
        )

    def start(self, wait=60):
        self.check_ports()
        self.migrate()
        if self.with_capture:
            http_port, smtp_port = self.capture_ports
            self._spawn(
                "capture",
                [
                    sys.executable,
                    "-m",
                    "devtools.capture",
                    "--http-port",
                    str(http_port),
                    "--smtp-port",
                    str(smtp_port),
                ],
            )
        for name in SERVICES:
            for instance in range(1, self.instances.get(name, 1) + 1):
                self.start_service(name, instance)
        try:
            self.wait_healthy(wait)
        except BaseException:
            self.stop()  # never leave a half-started platform behind
            raise
        return self

    def wait_healthy(self, wait=60):
        deadline = time.monotonic() + wait
        last = None
        while time.monotonic() < deadline:
            dead = self.died()
            if dead:
                raise PlatformError(self.death_report(*dead))
            try:
                last = requests.get(f"{self.gateway_url}/health", timeout=5)
                if last.status_code == 200:
                    return last.json()
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.5)
        raise PlatformError(f"platform not healthy after {wait}s: {last!r}")

    def wait_connected(self, process, timeout=30):
        """Until ``process`` has joined the broker (its consumers are up)."""
        log = self.log_dir / f"{process}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.processes.get(process)
            if proc is not None and proc.poll() is not None:
                raise PlatformError(self.death_report(process, proc.returncode))
            if log.exists():
                with open(log, "rb") as lines:
                    lines.seek(self.log_marks.get(process, 0))
                    if b"Connected to" in lines.read():
                        return
            time.sleep(0.2)
        raise PlatformError(f"{process} did not connect to the broker in {timeout}s")

    def stop(self):
        processes, self.processes = self.processes, {}
        self._stop_all(processes)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def taken_ports(wanted):
    """One line for each port of ``wanted`` ({port: what it is for}) that
    something already listens on, naming the holder where it can be seen."""
    return [
        f"port {port} ({what}) is taken by "
        f"{port_holder(port) or 'a process this user cannot see'}"
        for port, what in sorted(wanted.items())
        if not port_free(port)
    ]


def supervise(label, start, announce, check, stop):
    """The foreground life of ``make run`` and ``make cluster``: ``start()``,
    print ``announce()``, then call ``check()`` (which raises PlatformError
    when a part died) twice a second until Ctrl-C or SIGTERM; ``stop()``
    always runs. Returns the process's exit status."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    # A shell starts background jobs with SIGINT ignored, and Python then
    # leaves it so: Ctrl-C (or kill -INT) must stop us however we started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    status = 0
    try:
        start()
        print(announce(), flush=True)
        while not stopping:
            check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except PlatformError as exc:
        print(f"\n[{label}] FATAL: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        print(f"\n[{label}] stopping", flush=True)
        started = time.monotonic()
        stop()
        print(f"[{label}] stopped in {time.monotonic() - started:.1f}s", flush=True)
    return status


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devtools.platform")
    parser.add_argument(
        "--instances",
        default=os.environ.get("PLATFORM_INSTANCES", ""),
        help="N (every back-end service) or service=N,... (default: 1 each; "
        "env PLATFORM_INSTANCES)",
    )
    args = parser.parse_args(argv)
    try:
        instances = parse_instances(args.instances)
    except PlatformError as exc:
        parser.error(str(exc))
    env = {
        f"{name.upper()}_METRICS_PORT": os.environ.get(
            f"{name.upper()}_METRICS_PORT", str(port)
        )
        for name, port in METRICS_PORTS.items()
    }
    gateway_address = os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")
    # SMS_GATEWAY=kannel: SMS go through Kannel to the SMSC simulator, and
    # their receipts come back to the gateway (devtools/sms_gateway.py).
    sms_gateway = os.environ.get("SMS_GATEWAY", "")
    if sms_gateway not in ("", "capture", "kannel"):
        parser.error(f"SMS_GATEWAY={sms_gateway!r}: capture (default) or kannel")
    sms_stack = None
    if sms_gateway == "kannel":
        from devtools.sms_gateway import SmsGatewayStack

        sms_stack = SmsGatewayStack().start()
        env.update(
            sms_stack.verification_env(
                f"http://{gateway_address}/api/v1/internal/sms/receipts/kannel"
            )
        )
    platform = Platform(
        env=env,
        log_dir=os.environ.get("LOG_DIR"),
        gateway_address=gateway_address,
        capture_http_port=int(os.environ.get("CAPTURE_HTTP_PORT", 8025)),
        capture_smtp_port=int(os.environ.get("CAPTURE_SMTP_PORT", 1025)),
        instances=instances,
    )

    def announce():
        metrics = ", ".join(
            f"{platform.process_name(name, k)} :{platform.metrics_port(name, k)}/metrics"
            for name in METRICS_PORTS
            for k in range(1, instances[name] + 1)
        )
        processes = ", ".join(f"{n} pid {p.pid}" for n, p in platform.processes.items())
        url = platform.gateway_url
        return (
            f"\nPlatform up. Gateway: {url}  (health: {url}/health, docs: {url}/docs)\n"
            f"Service metrics: {metrics}\n"
            + (
                f"SMS through Kannel to the SMSC simulator: {sms_stack.control}"
                "/messages?to=+86...\n"
                if sms_stack
                else ""
            )
            + f"Captured SMS/email: {platform.capture_url}/api/messages?to=...\n"
            f"Processes: {processes}\n"
            f"Logs: {platform.log_dir}/<service>.log   Ctrl-C stops everything."
        )

    def check():
        dead = platform.died()
        if dead:
            raise PlatformError(platform.death_report(*dead))

    def stop():
        platform.stop()
        if sms_stack is not None:
            sms_stack.stop()

    return supervise("platform", platform.start, announce, check, stop)


if __name__ == "__main__":
    sys.exit(main())
