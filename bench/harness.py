"""Benchmark plumbing: start Nameko services as their own processes on a
throw-away vhost and database, drive HTTP load from threads in this process,
and report throughput, latency percentiles and service memory."""

import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


_issued_id_numbers, _issuing = set(), threading.Lock()


def fresh_resident_id():
    """A random valid resident ID number no earlier call in this process
    drew. The platform refuses a second account on one number (409
    ``id_already_registered``), and with ~200k numbers a birth year a bench
    run's few hundred accounts (the login and recovery benchmarks) repeat
    one about once in four runs: that account's logins were then refused."""
    from services.common.plumbing.testing import random_resident_id

    with _issuing:
        while True:
            number = random_resident_id()
            if number not in _issued_id_numbers:
                _issued_id_numbers.add(number)
                return number


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Services:
    """``nameko run`` processes started from one config file."""

    def __init__(self, config_text, env=None):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.config = self.dir / "config.yml"
        self.config.write_text(config_text)
        self.env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
        self.procs = {}

    def start(self, name, target, config=None):
        log = open(self.dir / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nameko",
                "run",
                "--config",
                str(config or self.config),
                target,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self.procs[name]

    def rss(self):
        return {name: rss_mb(p.pid) for name, p in self.procs.items()}

    def stop(self):
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_http(url, timeout=60, method="GET", **kw):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.request(method, url, timeout=5, **kw).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def load(
    url,
    clients,
    requests_total,
    method="POST",
    body=None,
    make_body=None,
    expect=(200, 201, 202),
    warmup=20,
    headers=None,
    make_headers=None,
    make_url=None,
):
    """Send ``requests_total`` requests from ``clients`` threads; latencies in ms.

    Every client warms up first (connections, pools); the clock starts when
    all of them have, so ``rps`` divides measured requests by the time the
    measured requests took, and stops when the last client is done.
    """
    latencies, failures = [], []
    lock = threading.Lock()
    counter = iter(range(requests_total))
    warmed = threading.Barrier(clients + 1)

    def worker(index):
        session = requests.Session()
        try:
            for _ in range(warmup):  # connections, warm caches, pools
                session.request(
                    method, _url(), data=_body(), headers=_headers(), timeout=30
                )
        finally:
            warmed.wait()
        mine, bad = [], []
        while next(counter, None) is not None:
            started = time.perf_counter()
            answer = session.request(
                method, _url(), data=_body(), headers=_headers(), timeout=30
            )
            elapsed = (time.perf_counter() - started) * 1000
            (mine if answer.status_code in expect else bad).append(
                elapsed if answer.status_code in expect else answer.status_code
            )
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    def _url():
        return make_url() if make_url is not None else url

    def _body():
        if make_body is not None:
            return json.dumps(make_body())
        return body

    def _headers():
        if make_headers is not None:
            return {**(headers or {}), **make_headers()}
        return headers

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    warmed.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    result = summarise(latencies, failures, wall)
    if failures:
        result["failed_statuses"] = dict(collections.Counter(failures))
    return result


def summarise(latencies, failures, wall):
    latencies = sorted(latencies)

    def pct(p):
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)

    return {
        "requests": len(latencies),
        "failed": len(failures),
        "rps": round(len(latencies) / wall, 1) if wall else None,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


_handed_out = set()


def listen_port():
    """A free port for a bench service to listen on, below Linux's
    ephemeral range (32768–60999): a port ``bind(0)`` hands out is also what
    an outgoing connection of any running service may be given before the
    listener binds it (verification once died on "address already in use"
    for its metrics port). Never the same port twice in a process."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def bench_platform(env, label, **options):
    """A platform (not started) on free ports, its logs in a temporary
    directory named after ``label``; ``options`` go to ``Platform``."""
    from devtools.platform import Platform

    return Platform(
        env=env,
        log_dir=tempfile.mkdtemp(prefix=f"bench-{label}-"),
        gateway_address=f"127.0.0.1:{listen_port()}",
        capture_http_port=listen_port(),
        capture_smtp_port=listen_port(),
        **options,
    )


def emit(record):
    print(json.dumps(record, ensure_ascii=False), flush=True)


def metric_samples(platform, service, metric):
    """``(labels, value)`` of each sample of ``metric`` that ``service``
    exports now (its metrics endpoint, read with prometheus_client's parser)."""
    return [
        (labels, value)
        for name, labels, value in _exported(platform, service)
        if name == metric
    ]


def _exported(platform, service):
    """``(name, labels, value)`` of every sample ``service`` exports now."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    port = platform.metrics_port(service)
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def entrypoint_outcomes(platform, service, entrypoint):
    """``service``'s ``entrypoint`` calls so far by outcome (``ok``,
    ``refused``: a stable error code, ``error``: a crash), and the refusals
    by code (``refused <code>``); wrk counts only the non-2xx statuses.
    One read of the service's metrics."""
    outcome_of = {
        "entrypoint_calls_total": lambda labels: labels["outcome"],
        "entrypoint_refusals_total": lambda labels: f"refused {labels['code']}",
    }
    counted = {}
    for name, labels, value in _exported(platform, service):
        if name in outcome_of and labels.get("entrypoint") == entrypoint:
            outcome = outcome_of[name](labels)
            counted[outcome] = counted.get(outcome, 0) + int(value)
    return counted


def outcomes_between(before, after):
    """The calls by outcome from ``before`` to ``after`` (``entrypoint_outcomes``)."""
    return {
        outcome: after[outcome] - before.get(outcome, 0)
        for outcome in after
        if after[outcome] > before.get(outcome, 0)
    }
