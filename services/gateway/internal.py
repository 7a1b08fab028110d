"""Operations surface (``INTERNAL_API_TOKEN``): onboarding schools, their
API tokens, staff roles. Mixed into ``GatewayService``."""

import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from services.common.contract.errors import ServiceError
from services.common.contract.vocabulary import BACKEND_SERVICES
from services.common.rules.roles import SCHOOL_CODE_PATTERN
from services.gateway.auth import require_internal
from services.gateway.http import endpoint, load_body, reshape
from services.gateway.internal_schemas import (
    AccountFactsSchema,
    AccountFactsStoredSchema,
    HealthSchema,
    LiveSchema,
    RolesSchema,
    RolesSetSchema,
    SchoolOnboardSchema,
    SchoolTokenSchema,
)
from services.gateway.openapi import build_spec, render_docs

__all__ = ["InternalEndpoints"]

SCHOOL_CODE_PATH = {"code": {"type": "string", "pattern": SCHOOL_CODE_PATTERN}}
ACCOUNT_ID_PATH = {"account_id": {"type": "string", "format": "uuid"}}
# Internal calls are made by ops tooling; the audit names the surface.
INTERNAL_ACTOR = "internal_api"


class InternalEndpoints:
    @endpoint(
        "POST",
        "/api/v1/internal/schools",
        summary="Onboard a school (its API token is shown once)",
        tags=("internal",),
        request_schema=SchoolOnboardSchema,
        response_schema=SchoolTokenSchema,
        status=201,
        errors=(400, 401, 409, 503, 504),
        auth="internal",
    )
    def onboard_school(self, request):
        """`curl -s -X POST localhost:8000/api/v1/internal/schools
        -H "Authorization: Bearer $INTERNAL_API_TOKEN" -H 'Content-Type: application/json'
        -d '{"code": "BJ101", "name": "北京市第一〇一中学", "region": "北京"}'` →
        201 `{"code": "BJ101", "api_token": "sch_…"}`; 409 `school_exists`."""
        require_internal(request, self.config)
        body = load_body(request, SchoolOnboardSchema)
        answer = self.registry_sync.onboard_school({**body, "actor": INTERNAL_ACTOR})
        return 201, reshape(SchoolTokenSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/internal/schools/{code}/token",
        summary="Rotate a school's API token (the old one dies)",
        tags=("internal",),
        response_schema=SchoolTokenSchema,
        status=201,
        errors=(400, 401, 404, 503, 504),
        auth="internal",
        path_schemas=SCHOOL_CODE_PATH,
    )
    def rotate_school_token(self, request, code):
        """`curl -s -X POST localhost:8000/api/v1/internal/schools/BJ101/token
        -H "Authorization: Bearer $INTERNAL_API_TOKEN"` → 201 `{"code", "api_token"}`."""
        require_internal(request, self.config)
        answer = self.registry_sync.rotate_school_token(
            {"code": code, "actor": INTERNAL_ACTOR}
        )
        return 201, reshape(SchoolTokenSchema, answer)

    @endpoint(
        "PUT",
        "/api/v1/internal/accounts/{account_id}/roles",
        summary="Set an account's staff roles",
        tags=("internal",),
        request_schema=RolesSchema,
        response_schema=RolesSetSchema,
        errors=(400, 401, 404, 422, 503, 504),
        auth="internal",
        path_schemas=ACCOUNT_ID_PATH,
    )
    def set_roles(self, request, account_id):
        """Replaces the staff roles (`student` stays):
        `curl -s -X PUT localhost:8000/api/v1/internal/accounts/$ID/roles
        -H "Authorization: Bearer $INTERNAL_API_TOKEN" -H 'Content-Type: application/json'
        -d '{"roles": [{"role": "school_admin", "school_code": "BJ101"}]}'` →
        `{"account_id": "…", "roles": ["school_admin:BJ101", "student"]}`."""
        require_internal(request, self.config)
        body = load_body(request, RolesSchema)
        answer = self.identity.set_roles(
            {**body, "account_id": account_id, "actor": INTERNAL_ACTOR}
        )
        # This instance forgets the account's principals now; the others on
        # the roles_changed broadcast, moments later.
        self.principal.forget(str(answer["account_id"]))
        return 200, reshape(RolesSetSchema, answer)

    @endpoint(
        "GET",
        "/health/live",
        summary="This gateway instance answers HTTP (no RPC)",
        tags=("health",),
        response_schema=LiveSchema,
    )
    def health_live(self, request):
        """200 as long as this gateway process serves requests. What a load
        balancer or a readiness probe routes by: it must not depend on the
        services or the database, or a database failover would take every
        gateway out of rotation at once (seen on the cluster: HAProxy
        answered "no server available" for the failover's 12 s).

        `curl -s localhost:8000/health/live` → `{"status": "ok"}`
        """
        return 200, LiveSchema().dump({"status": "ok"})

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

    # -- other platform systems ---------------------------------------------
    @endpoint(
        "PUT",
        "/api/v1/internal/accounts/{account_id}/facts",
        summary="Wallet balance and owned courses of an account (internal)",
        tags=("internal",),
        request_schema=AccountFactsSchema,
        response_schema=AccountFactsStoredSchema,
        errors=(400, 401, 503, 504),
        auth="internal",
        path_schemas={"account_id": {"type": "string", "format": "uuid"}},
    )
    def set_account_facts(self, request, account_id):
        """For the wallet and course systems, with `INTERNAL_API_TOKEN`; the
        same facts also arrive as `wallet_balance_changed` and
        `course_ownership_changed` events.

        `curl -s -X PUT localhost:8000/api/v1/internal/accounts/$ID/facts
        -H "Authorization: Bearer $INTERNAL_API_TOKEN" -H 'Content-Type: application/json'
        -d '{"balance_fen": 0, "owned": [], "as_of": "2026-11-24T08:00:00+08:00"}'`
        """
        require_internal(request, self.config)
        body = load_body(request, AccountFactsSchema)
        answer = self.identity.set_account_facts(
            {
                **body,
                "as_of": body["as_of"].isoformat(),
                "account_id": account_id,
            }
        )
        return 200, reshape(AccountFactsStoredSchema, answer)
