"""The gateway: the platform's only HTTP surface. It keeps no state of its
own; every answer comes from a back-end service over RPC with a deadline."""

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from services.common.context import RequestContext
from services.common.errors import ServiceError
from services.common.metrics import Metrics
from services.common.rpc import ServiceRpc
from services.gateway.http import endpoint
from services.gateway.openapi import build_spec, render_docs
from services.gateway.schemas import HealthSchema

__all__ = ["GatewayService", "BACKEND_SERVICES"]

BACKEND_SERVICES = ("identity", "verification", "recovery", "registry_sync")


class GatewayService:
    """HTTP entrypoints; one ``ServiceRpc`` per back-end service."""

    name = "gateway"

    request_context = RequestContext()
    metrics = Metrics()

    identity = ServiceRpc("identity")
    verification = ServiceRpc("verification")
    recovery = ServiceRpc("recovery")
    registry_sync = ServiceRpc("registry_sync")

    @endpoint(
        "GET",
        "/health",
        summary="Reachability of every service over RPC",
        tags=("health",),
        response_schema=HealthSchema,
        errors=(503,),
    )
    def health(self, request):
        """200 when every service answered its ``health`` RPC within 2 s, else 503.

        `curl -s localhost:8000/health` →
        `{"status": "ok", "services": {"identity": {"status": "up", ...}, ...}}`
        """
        started = time.perf_counter()
        pending = {}
        report = {}
        for name in BACKEND_SERVICES:
            try:
                pending[name] = getattr(self, name).call_async("health", _timeout=2.0)
            except ServiceError as exc:
                report[name] = {"status": "down", "error": exc.code}
        for name, reply in pending.items():
            try:
                answer = reply.result()
                report[name] = {
                    "status": "up",
                    "database": answer.get("database"),
                    "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            except ServiceError as exc:
                report[name] = {"status": "down", "error": exc.code}
        all_up = all(item["status"] == "up" for item in report.values())
        body = HealthSchema().dump(
            {
                "status": "ok" if all_up else "degraded",
                "services": {name: report[name] for name in BACKEND_SERVICES},
            }
        )
        return (200 if all_up else 503), body

    @endpoint(
        "GET", "/metrics", summary="Prometheus metrics of the gateway", tags=("health",)
    )
    def prometheus_metrics(self, request):
        """Prometheus text format."""
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @endpoint("GET", "/openapi.json", summary="This API as OpenAPI 3", tags=("docs",))
    def openapi_json(self, request):
        """The OpenAPI document generated from the marshmallow schemas."""
        return 200, build_spec(type(self), server_url=request.host_url.rstrip("/"))

    @endpoint("GET", "/docs", summary="A page to browse the API", tags=("docs",))
    def docs(self, request):
        """HTML rendering of ``/openapi.json``."""
        page = render_docs(build_spec(type(self)))
        return Response(page, content_type="text/html; charset=utf-8")
