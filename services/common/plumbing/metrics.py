"""Prometheus metrics per service (prometheus-client).

``Metrics`` times every entrypoint and counts outcomes, and each refusal by
its stable error code (a bounded set: ``services.common.contract``).
Services without an HTTP surface expose ``/metrics`` on ``METRICS_PORT`` (0
or absent: not exposed, e.g. in tests); the gateway serves its own on
``GET /metrics``.
"""

import logging
import time
import weakref

from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Histogram, start_http_server

from services.common.contract.errors import ServiceError

__all__ = [
    "Metrics",
    "ENTRYPOINT_SECONDS",
    "ENTRYPOINT_CALLS",
    "ENTRYPOINT_REFUSALS",
    "EVENTS_PARKED",
]

ENTRYPOINT_SECONDS = Histogram(
    "entrypoint_duration_seconds",
    "Time spent running one entrypoint call",
    ["service", "entrypoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ENTRYPOINT_CALLS = Counter(
    "entrypoint_calls_total",
    "Entrypoint calls by outcome (ok, refused: a ServiceError, error: a crash)",
    ["service", "entrypoint", "outcome"],
)
# Which refusals: a burst of database_conflict or resend_too_soon reads
# differently from one of invalid_credentials.
ENTRYPOINT_REFUSALS = Counter(
    "entrypoint_refusals_total",
    "Entrypoint calls refused, by the refusal's stable error code",
    ["service", "entrypoint", "code"],
)

EVENTS_PARKED = Counter(
    "events_parked_total",
    "Events parked in dead_events (reason: failing after N attempts, malformed)",
    ["service", "handler", "reason"],
)

_exporter_ports = set()

log = logging.getLogger("services.access")


class Metrics(DependencyProvider):
    """Records duration and outcome of every worker of the service."""

    def __init__(self):
        self.started = weakref.WeakKeyDictionary()

    def setup(self):
        port = int(self.container.config.get("METRICS_PORT") or 0)
        # Loopback by default; a pod sets METRICS_ADDRESS=0.0.0.0 to be scraped.
        address = self.container.config.get("METRICS_ADDRESS") or "127.0.0.1"
        if port and port not in _exporter_ports:
            start_http_server(port, addr=address)
            _exporter_ports.add(port)

    def worker_setup(self, worker_ctx):
        self.started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started.pop(worker_ctx, None)
        name = worker_ctx.entrypoint.method_name
        service = worker_ctx.service_name
        elapsed = time.perf_counter() - started if started is not None else 0.0
        ENTRYPOINT_SECONDS.labels(service, name).observe(elapsed)
        if exc_info is None:
            outcome = "ok"
        elif isinstance(exc_info[1], ServiceError):
            outcome = f"refused {exc_info[1].code}"
            ENTRYPOINT_REFUSALS.labels(service, name, exc_info[1].code).inc()
        else:
            outcome = "error"
        ENTRYPOINT_CALLS.labels(service, name, outcome.split()[0]).inc()
        # One access line per call; the formatter adds the request id.
        log.info("%s.%s %s in %.1f ms", service, name, outcome, elapsed * 1000)
