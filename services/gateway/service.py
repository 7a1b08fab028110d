"""The gateway: the platform's only HTTP surface. It keeps no state of its
own; every answer comes from a back-end service over RPC with a deadline."""

import time

from nameko.dependency_providers import Config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from services.common.context import RequestContext
from services.common.errors import ServiceError
from services.common.metrics import Metrics
from services.common.rpc import ServiceRpc
from services.gateway.http import client_ip, endpoint, load_body, reshape
from services.gateway.openapi import build_spec, render_docs
from services.gateway.schemas import (
    AccountCreatedSchema,
    AccountRegistrationSchema,
    CaptchaSchema,
    CodeIssuedSchema,
    CodeRequestSchema,
    HealthSchema,
)

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
    config = Config()

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

    # -- verification codes and captchas ---------------------------------
    @endpoint(
        "POST",
        "/api/v1/captchas",
        summary="A new image captcha",
        tags=("verification",),
        response_schema=CaptchaSchema,
        status=201,
        errors=(503, 504),
    )
    def create_captcha(self, request):
        """Single use, valid 5 minutes.

        `curl -s -X POST localhost:8000/api/v1/captchas` →
        `{"captcha_id": "…", "image_png_base64": "iVBOR…", "expires_at": "…"}`
        """
        return 201, reshape(CaptchaSchema(), self.verification.issue_captcha())

    @endpoint(
        "POST",
        "/api/v1/codes",
        summary="Send a verification code",
        tags=("verification",),
        request_schema=CodeRequestSchema,
        response_schema=CodeIssuedSchema,
        status=202,
        errors=(400, 403, 422, 429, 503, 504),
    )
    def send_code(self, request):
        """SMS or email; 5 a day per destination (Beijing day), 60 s between sends.

        `curl -s -X POST localhost:8000/api/v1/codes -H 'Content-Type: application/json'
        -d '{"channel": "sms", "destination": "13812345678", "purpose": "register"}'` →
        202 `{"expires_at": "…", "resend_after": 60, "remaining_today": 4}`;
        429 `resend_too_soon` (`retry_after`) or `daily_limit_reached` (`resets_at`).
        """
        body = load_body(request, CodeRequestSchema())
        answer = self.verification.issue_code(
            {
                **body,
                "captcha_id": str(body["captcha_id"]) if body["captcha_id"] else None,
                "client_ip": client_ip(request, self.config),
            }
        )
        return 202, reshape(CodeIssuedSchema(), answer)

    # -- accounts --------------------------------------------------------
    @endpoint(
        "POST",
        "/api/v1/accounts",
        summary="Register by phone",
        tags=("accounts",),
        request_schema=AccountRegistrationSchema,
        response_schema=AccountCreatedSchema,
        status=201,
        errors=(400, 409, 422, 429, 503, 504),
    )
    def register_account(self, request):
        """Needs a `register` code sent to the phone first (`POST /api/v1/codes`).

        409 `id_already_registered` points to username recovery; repeat with
        `register_anyway: true` for a limited `duplicate_pending` account.
        422 names the rule that failed (`id_checksum_invalid`, `name_traditional`
        with `suggestion`, `password_too_common`, …).
        """
        body = load_body(request, AccountRegistrationSchema())
        return 201, reshape(
            AccountCreatedSchema(), self.identity.register_by_phone(body)
        )
