"""Operations surface (``INTERNAL_API_TOKEN``): onboarding schools, their
API tokens, staff roles. Mixed into ``GatewayService``."""

import hmac
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from services.common.contract.errors import Forbidden, InvalidRequest, ServiceError
from services.common.contract.vocabulary import BACKEND_SERVICES
from services.common.rules.roles import SCHOOL_CODE_PATTERN
from services.gateway.auth import require_internal
from services.gateway.http import endpoint, load_body, load_query, reshape
from services.gateway.internal_schemas import (
    AccountFactsSchema,
    AccountFactsStoredSchema,
    AliyunReceiptAnswerSchema,
    AliyunReportSchema,
    HealthSchema,
    KannelReceiptQuerySchema,
    LiveSchema,
    ReceiptRecordedSchema,
    RolesSchema,
    RolesSetSchema,
    SchoolOnboardSchema,
    SchoolTokenSchema,
    SuspensionSchema,
    SuspensionsSchema,
)
from services.gateway.openapi import NO_NUL_PATTERN, build_spec, render_docs
from services.gateway.schemas import ScimSourcesAnswerSchema, ScimSourcesSetSchema

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
        "/api/v1/internal/schools/{code}/scim-sources",
        summary="Where a school's SCIM student numbers and ID numbers come from",
        tags=("internal",),
        request_schema=ScimSourcesSetSchema,
        response_schema=ScimSourcesAnswerSchema,
        errors=(400, 401, 404, 503, 504),
        auth="internal",
        path_schemas=SCHOOL_CODE_PATH,
    )
    def set_scim_sources(self, request, code):
        """For a school whose identity provider (Entra ID, Okta) sends the
        student number as `employeeNumber` or `userName`: the order in which
        each identifier is looked for; `{"sources": {}}` restores the
        defaults (student number: our extension, `employeeNumber`,
        `userName`; ID number: our extension). Audited.

        `curl -s -X PUT localhost:8000/api/v1/internal/schools/BJ101/scim-sources
        -H "Authorization: Bearer $INTERNAL_API_TOKEN" -H 'Content-Type: application/json'
        -d '{"sources": {"student_number": ["employeeNumber", "userName"]}}'` →
        `{"code": "BJ101", "sources": {"student_number": [...], "id_number": ["extension"]},
        "defaults": false}`"""
        require_internal(request, self.config)
        body = load_body(request, ScimSourcesSetSchema)
        answer = self.registry_sync.set_scim_sources(
            {"code": code, "sources": body["sources"], "actor": INTERNAL_ACTOR}
        )
        return 200, reshape(ScimSourcesAnswerSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/internal/schools/{code}/scim-sources",
        summary="A school's SCIM identifier sources",
        tags=("internal",),
        response_schema=ScimSourcesAnswerSchema,
        errors=(400, 401, 404, 503, 504),
        auth="internal",
        path_schemas=SCHOOL_CODE_PATH,
    )
    def scim_sources(self, request, code):
        """`curl -s localhost:8000/api/v1/internal/schools/BJ101/scim-sources
        -H "Authorization: Bearer $INTERNAL_API_TOKEN"`"""
        require_internal(request, self.config)
        answer = self.registry_sync.scim_sources(
            {"code": code, "actor": INTERNAL_ACTOR}
        )
        return 200, reshape(ScimSourcesAnswerSchema, answer)

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

    # -- SMS gateways' delivery receipts -----------------------------------
    @endpoint(
        "GET",
        "/api/v1/internal/sms/receipts/kannel",
        summary="Kannel's delivery report on one message (its dlr-url)",
        tags=("internal",),
        response_schema=ReceiptRecordedSchema,
        errors=(400, 403, 503, 504),
        parameters=(
            {"in": "query", "name": "delivery", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}},
            {"in": "query", "name": "sig", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{1,64}$"}},
            {"in": "query", "name": "type", "required": True,
             "schema": {"type": "integer", "minimum": 0, "maximum": 255}},
            {"in": "query", "name": "report", "required": False,
             "schema": {"type": "string", "maxLength": 512,
                        "pattern": NO_NUL_PATTERN}},
        ),
    )  # fmt: skip
    def kannel_receipt(self, request):
        """Called by Kannel, never by people: each message's `dlr-url` names
        its delivery and carries that delivery's signature, so a receipt for
        any other delivery is refused (403 `receipt_signature_invalid`).
        Duplicates and interim reports answer `{"recorded": 0}`.

        `curl -s 'localhost:8000/api/v1/internal/sms/receipts/kannel?delivery=42&sig=…&type=1&report=id%3A1001+stat%3ADELIVRD'`
        → `{"recorded": 1}`"""
        query = load_query(request, KannelReceiptQuerySchema)
        answer = self.verification.record_kannel_receipt(
            {
                "delivery_id": query["delivery"],
                "signature": query["sig"],
                "dlr_type": query["type"],
                "report": query["report"],
            }
        )
        return 200, reshape(ReceiptRecordedSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/internal/sms/receipts/aliyun",
        summary="Alibaba Cloud's SmsReport push (a JSON array of receipts)",
        tags=("internal",),
        request_schema=AliyunReportSchema(many=True),
        response_schema=AliyunReceiptAnswerSchema,
        errors=(400, 403, 503, 504),
        parameters=(
            {"in": "query", "name": "token", "required": True,
             "schema": {"type": "string", "pattern": NO_NUL_PATTERN}},
        ),
    )  # fmt: skip
    def aliyun_receipts(self, request):
        """The push URL set in Alibaba's console carries `SMS_RECEIPT_TOKEN`
        (the push sends no header of ours); each report names its delivery
        by the `OutId` the send carried.

        `curl -s -X POST 'localhost:8000/api/v1/internal/sms/receipts/aliyun?token=$SMS_RECEIPT_TOKEN'
        -H 'Content-Type: application/json' -d '[{"out_id": "42", "success": true,
        "err_code": "DELIVERED", "biz_id": "…"}]'` → `{"code": 0, "msg": "成功"}`"""
        expected = self.config.get("SMS_RECEIPT_TOKEN") or ""
        given = request.args.get("token") or ""
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Forbidden("receipt_token_invalid")
        reports = load_body(request, AliyunReportSchema(many=True))
        if not reports:
            return 200, {"code": 0, "msg": "成功"}
        self.verification.record_aliyun_receipts(
            {
                "reports": [
                    {key: report[key] for key in ("out_id", "success", "err_code")}
                    for report in reports
                ]
            }
        )
        return 200, reshape(AliyunReceiptAnswerSchema, {"code": 0, "msg": "成功"})

    # -- SMS pumping suspensions (ops) -------------------------------------
    @endpoint(
        "GET",
        "/api/v1/internal/sms/suspensions",
        summary="SMS sending suspended by the pumping watch, with its figures",
        tags=("internal",),
        response_schema=SuspensionsSchema,
        errors=(400, 401, 503, 504),
        auth="internal",
        parameters=(
            {"in": "query", "name": "include_ended", "required": False,
             "schema": {"type": "boolean"}},
        ),
    )  # fmt: skip
    def sms_suspensions(self, request):
        """In force now (`?include_ended=true`: the last day's too); each with
        the figures it was judged on (sent, delivered, verified, baseline).

        `curl -s localhost:8000/api/v1/internal/sms/suspensions
        -H "Authorization: Bearer $INTERNAL_API_TOKEN"` →
        `{"suspensions": [{"id": 3, "scope": "segment", "key": "+861380013",
        "level": 1, "until": "…", "active": true, "figures": {"sent": 240,
        "verified": 0, …}}]}`"""
        require_internal(request, self.config)
        raw = request.args.get("include_ended", "false").lower()
        if raw not in ("true", "false", "1", "0"):
            raise InvalidRequest(
                "invalid_request", {"errors": {"include_ended": ["true or false"]}}
            )
        answer = self.verification.list_sms_suspensions(
            {"include_ended": raw in ("true", "1")}
        )
        return 200, reshape(SuspensionsSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/internal/sms/suspensions/{suspension_id}/lift",
        summary="Lift an SMS suspension now",
        tags=("internal",),
        response_schema=SuspensionSchema,
        errors=(400, 401, 404, 503, 504),
        auth="internal",
        path_schemas={
            "suspension_id": {"type": "integer", "minimum": 1, "maximum": 2**62 - 1}
        },
    )
    def lift_sms_suspension(self, request, suspension_id):
        """Sends to the segment or network go out again at once (the other
        verification instances within a check, 5 s). Lifting an ended one
        answers it unchanged.

        `curl -s -X POST localhost:8000/api/v1/internal/sms/suspensions/3/lift
        -H "Authorization: Bearer $INTERNAL_API_TOKEN"` → the suspension,
        `"active": false`; 404 `suspension_not_found`."""
        require_internal(request, self.config)
        if not suspension_id.isdigit() or not 1 <= int(suspension_id) < 2**62:
            raise InvalidRequest(
                "invalid_request", {"errors": {"suspension_id": ["not an id"]}}
            )
        answer = self.verification.lift_sms_suspension(
            {"suspension_id": int(suspension_id), "actor": INTERNAL_ACTOR}
        )
        return 200, reshape(SuspensionSchema, answer)

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
