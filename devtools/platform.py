"""Start the whole platform on this machine: migrations, the SMS/email
capture server and all five services, one ``nameko run`` process each.

    python -m devtools.platform          # what `make run` calls; Ctrl-C stops all

The end-to-end tests use ``Platform`` with their own vhost, databases and
ports, so they run exactly what a user runs.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

__all__ = ["Platform", "SERVICES"]

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("identity", "verification", "recovery", "registry_sync", "gateway")
# Where `make run` exposes each back-end service's Prometheus metrics.
METRICS_PORTS = {
    "identity": 9101,
    "verification": 9102,
    "recovery": 9103,
    "registry_sync": 9104,
}


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
    ):
        self.env = {**os.environ, **(env or {})}
        self.env["GATEWAY_ADDRESS"] = gateway_address
        self.env.setdefault("PYTHONWARNINGS", "ignore")
        # argon2's 19 MiB per hash would stay in per-thread malloc arenas.
        self.env.setdefault("MALLOC_ARENA_MAX", "2")
        self.gateway_url = f"http://{gateway_address}"
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

    def _spawn(self, name, argv):
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = proc
        return proc

    def migrate(self):
        subprocess.run(
            [sys.executable, "-m", "services.common.migrate", "--all"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )

    def start_service(self, name):
        return self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "nameko",
                "run",
                "--config",
                f"services/{name}/config.yml",
                f"services.{name}.service",
            ],
        )

    def stop_service(self, name, sig=signal.SIGTERM, timeout=15):
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start(self, wait=60):
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
            self.start_service(name)
        self.wait_healthy(wait)
        return self

    def wait_healthy(self, wait=60):
        deadline = time.monotonic() + wait
        last = None
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; "
                        f"see {self.log_dir / (name + '.log')}"
                    )
            try:
                last = requests.get(f"{self.gateway_url}/health", timeout=5)
                if last.status_code == 200:
                    return last.json()
            except requests.RequestException as exc:
                last = exc
            time.sleep(0.5)
        raise RuntimeError(f"platform not healthy after {wait}s: {last!r}")

    def stop(self):
        for name in list(self.processes):
            self.stop_service(name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    metrics_env = {
        f"{name.upper()}_METRICS_PORT": str(port)
        for name, port in METRICS_PORTS.items()
    }
    platform = Platform(env=metrics_env, log_dir=os.environ.get("LOG_DIR"))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        platform.start()
        print(
            f"\nPlatform up. Gateway: {platform.gateway_url}  "
            f"(health: {platform.gateway_url}/health, docs: {platform.gateway_url}/docs)"
        )
        print(
            "Service metrics: "
            + ", ".join(
                f"{name} :{port}/metrics" for name, port in METRICS_PORTS.items()
            )
        )
        print(f"Captured SMS/email: {platform.capture_url}/api/messages?to=...")
        print(
            f"Logs: {platform.log_dir}/<service>.log   Ctrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            for name, proc in list(platform.processes.items()):
                if proc.poll() is not None:
                    print(
                        f"[platform] {name} exited with {proc.returncode}", flush=True
                    )
                    platform.processes.pop(name)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        print("\n[platform] stopping", flush=True)
        platform.stop()


if __name__ == "__main__":
    main()
