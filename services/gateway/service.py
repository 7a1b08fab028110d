"""The gateway: the platform's only HTTP surface. It keeps no state of its
own; every answer comes from a back-end service over RPC with a deadline."""

import base64
import logging
import time
from datetime import datetime

from marshmallow import ValidationError
from nameko.dependency_providers import Config
from nameko.events import BROADCAST, event_handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from services.common.contract.errors import (
    InvalidRequest,
    RuleViolation,
    ServiceError,
    Unauthenticated,
)
from services.common.contract.events import (
    EnvelopeSchema,
    RolesChangedPayload,
    SessionsRevokedPayload,
)
from services.common.contract.vocabulary import BACKEND_SERVICES
from services.common.plumbing.config import KeyGuard
from services.common.plumbing.context import RequestContext
from services.common.plumbing.metrics import Metrics
from services.common.plumbing.rpc import ServiceRpc

# Modules, not classes: `nameko run` takes every class with entrypoints in
# this module's namespace for a service of its own.
from services.gateway import admin, internal, pages, registry, school, scim
from services.gateway import recovery as recovery_surface
from services.gateway.auth import (
    SessionCache,
    check_csrf,
    device_id,
    require_internal,
    session_token,
)
from services.gateway.http import (
    client_ip,
    endpoint,
    json_response,
    load_body,
    reshape,
)
from services.gateway.openapi import build_spec, render_docs
from services.gateway.schemas import (
    AccountCreatedSchema,
    AccountFactsSchema,
    AccountFactsStoredSchema,
    AccountRegistrationSchema,
    AuthInfoChangedSchema,
    AuthInfoChangeSchema,
    CaptchaSchema,
    CodeIssuedSchema,
    CodeRequestSchema,
    DeactivatedSchema,
    DeactivateSchema,
    DeactivationStatusSchema,
    EmailChangedSchema,
    EmailChangeSchema,
    EndedSchema,
    GuardianSchema,
    GuardianSetSchema,
    HealthSchema,
    LinkedSchema,
    LinkSchema,
    LoginNamesSchema,
    LoginSchema,
    PermissionsSchema,
    PhoneChangedSchema,
    PhoneChangeSchema,
    ProfileSchema,
    QuestionsSetSchema,
    SecurityQuestionsSchema,
    SessionSchema,
    StudentNumberRegistrationSchema,
    UsernameRecoverySchema,
)
from services.gateway.web import WebCookies

__all__ = ["GatewayService", "BACKEND_SERVICES"]


log = logging.getLogger(__name__)


class GatewayService(
    internal.InternalEndpoints,
    admin.AdminEndpoints,
    school.SchoolSystemEndpoints,
    scim.ScimEndpoints,
    registry.RegistryEndpoints,
    recovery_surface.RecoveryEndpoints,
    pages.PageEndpoints,
):
    """HTTP entrypoints; one ``ServiceRpc`` per back-end service. Student-app
    endpoints are here; operations, admins, school systems and recovery have
    a module each (``internal.py``, ``admin.py``, ``school.py``, ``scim.py``,
    ``registry.py``, ``recovery.py``)."""

    name = "gateway"

    request_context = RequestContext()
    metrics = Metrics()
    key_guard = KeyGuard()

    identity = ServiceRpc("identity")
    verification = ServiceRpc("verification")
    recovery = ServiceRpc("recovery")
    registry_sync = ServiceRpc("registry_sync")
    config = Config()
    sessions = SessionCache()

    def _principal(self, request):
        """The caller's session, from the cache or from ``identity``: an app's
        bearer token, or a page's session cookie (then a state-changing
        request must carry its CSRF token)."""
        token, from_cookie = session_token(request)
        if from_cookie:
            check_csrf(request, self._csrf_key(), token)
        device = device_id(request)
        if device is None:
            # A session is bound to its device: a request that names none
            # (no X-Device-Id, no device cookie) cannot show it is on it.
            raise Unauthenticated("device_required")
        principal = self.sessions.get(token, device)
        if principal is None:
            asked_at = time.monotonic()
            principal = self.identity.authenticate(
                {"token": token, "device_id": device}
            )
            self.sessions.put(token, device, principal, asked_at)
        return principal

    def _csrf_key(self):
        return base64.b64decode(self.config.get("GATEWAY_CSRF_KEY", ""))

    def _account_call(self, request, method, answer_schema, request_schema=None):
        """The caller's account through ``identity.<method>``: with the body
        (validated by ``request_schema``) plus ``account_id`` and where the
        request came from (for the notice a change sends) when there is one,
        else with the account id alone."""
        account_id = self._principal(request)["account_id"]
        if request_schema is None:
            answer = getattr(self.identity, method)(account_id)
        else:
            body = load_body(request, request_schema)
            answer = getattr(self.identity, method)(
                {
                    **body,
                    "account_id": account_id,
                    "device_id": device_id(request),
                    "client_ip": client_ip(request, self.config),
                }
            )
        return reshape(answer_schema, answer)

    def _forget_account(self, body, payload_schema, event_type):
        """Drop the cached principals of the account an identity broadcast
        names (a malformed one is logged and dropped: nothing to evict)."""
        try:
            envelope = EnvelopeSchema().load(body)
            payload = payload_schema().load(envelope["payload"])
        except ValidationError:
            log.error("dropping a malformed %s event", event_type)
            return
        self.sessions.evict_account(payload["account_id"])

    @event_handler(
        "identity", "sessions_revoked", handler_type=BROADCAST, reliable_delivery=False
    )
    def forget_sessions(self, body):
        """Every gateway instance drops the account's cached sessions."""
        self._forget_account(body, SessionsRevokedPayload, "sessions_revoked")

    @event_handler(
        "identity", "roles_changed", handler_type=BROADCAST, reliable_delivery=False
    )
    def forget_principal(self, body):
        """Every gateway instance drops the account's cached principals, so
        a granted or withdrawn role counts from the next request."""
        self._forget_account(body, RolesChangedPayload, "roles_changed")

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
        try:
            body = load_body(request, CodeRequestSchema())
        except InvalidRequest as refusal:
            if refusal.code != "destination_invalid":
                raise
            raw = request.get_json(silent=True) or {}
            code = "email_invalid" if raw.get("channel") == "email" else "phone_invalid"
            raise InvalidRequest(code, refusal.extra) from None
        if ("@" in body["destination"]) != (body["channel"] == "email"):
            # Well-formed, but this address cannot take this channel.
            raise RuleViolation("destination_channel_mismatch")
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
        device_header="optional",
        links={
            "LogIn": {
                "target": ("POST", "/api/v1/sessions"),
                "description": "Log in with the phone and password just registered.",
                "parameters": {"header.X-Device-Id": "$request.header.X-Device-Id"},
                "requestBody": {
                    "login": "$request.body#/phone",
                    "password": "$request.body#/password",
                },
                # The body is exactly this (an app's login), not merged into
                # a generated one that may choose another way in.
                "x-schemathesis": {"merge_body": False},
            }
        },
    )
    def register_account(self, request):
        """Needs a `register` code sent to the phone first (`POST /api/v1/codes`).

        409 `id_already_registered` points to username recovery; repeat with
        `register_anyway: true` for a limited `duplicate_pending` account.
        422 names the rule that failed (`id_checksum_invalid`, `name_traditional`
        with `suggestion`, `password_too_common`, …).
        """
        body = load_body(request, AccountRegistrationSchema())
        answer = self.identity.register_by_phone(
            {**body, "device_id": device_id(request)}
        )
        return 201, reshape(AccountCreatedSchema(), answer)

    @endpoint(
        "POST",
        "/api/v1/accounts/by-student-number",
        summary="Register by student number (K-12, guardian's phone)",
        tags=("accounts",),
        request_schema=StudentNumberRegistrationSchema,
        response_schema=AccountCreatedSchema,
        status=201,
        errors=(400, 409, 422, 429, 503, 504),
        device_header="optional",
    )
    def register_by_student_number(self, request):
        """Needs a `guardian_check` code sent to the guardian's phone. The
        answer's `passport_id` is the child's login name.

        `curl -s -X POST localhost:8000/api/v1/accounts/by-student-number
        -H 'Content-Type: application/json' -d '{"school_code": "BJ101",
        "student_number": "20240117", "name": "李小花", "guardian_phone":
        "13912345678", "code": "123456", "password": "a long secret"}'`
        """
        body = load_body(request, StudentNumberRegistrationSchema())
        answer = self.identity.register_by_student_number(
            {**body, "device_id": device_id(request)}
        )
        return 201, reshape(AccountCreatedSchema(), answer)

    # -- sessions ----------------------------------------------------------
    @endpoint(
        "POST",
        "/api/v1/sessions",
        summary="Log in",
        tags=("sessions",),
        request_schema=LoginSchema,
        response_schema=SessionSchema,
        status=201,
        errors=(400, 401, 403, 404, 422, 429, 503, 504),
        device_header="required",
        links={
            name: {
                "target": target,
                "description": "Use the session from the device it was made on.",
                "parameters": {
                    "header.Authorization": "Bearer {$response.body#/token}",
                    "header.X-Device-Id": "$request.header.X-Device-Id",
                },
            }
            for name, target in (
                ("ReadAccount", ("GET", "/api/v1/me")),
                ("ReadInbox", ("GET", "/api/v1/me/inbox")),
                ("LogOut", ("DELETE", "/api/v1/sessions/current")),
            )
        },
    )
    def login(self, request):
        """`X-Device-Id` is required. An unseen device gets 403
        `device_verification_required` and a `login_new_device` code on the
        bound phone; repeat with `code`. 401 `invalid_credentials`, 429
        `login_throttled` (`retry_after`).

        `curl -s -X POST localhost:8000/api/v1/sessions -H 'X-Device-Id: my-phone-1'
        -H 'Content-Type: application/json'
        -d '{"login": "13812345678", "password": "a long secret"}'`
        """
        body = load_body(request, LoginSchema())
        web_session = body.pop("web_session")
        if web_session and request.mimetype != "application/json":
            # A cross-site form cannot send JSON without a preflight we never
            # answer: no logging a browser into someone else's account.
            raise InvalidRequest("json_required")
        answer = self.identity.login(
            {
                **body,
                "device_id": device_id(request, required=True),
                "client_ip": client_ip(request, self.config),
            }
        )
        session = reshape(SessionSchema(), answer)
        if not web_session:
            return 201, session
        # A page login: the token goes into an HttpOnly cookie, not the page.
        response = json_response(201, {**session, "token": None, "web_session": True})
        WebCookies(self.config).set_session(
            response, answer["token"], datetime.fromisoformat(answer["expires_at"])
        )
        return response

    @endpoint(
        "DELETE",
        "/api/v1/sessions/current",
        summary="Log out",
        tags=("sessions",),
        status=204,
        errors=(401, 503, 504),
        auth="session",
    )
    def logout(self, request):
        """`curl -s -X DELETE localhost:8000/api/v1/sessions/current
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: my-phone-1'` → 204"""
        principal = self._principal(request)
        self.identity.logout(principal["session_id"])
        self.sessions.evict_account(principal["account_id"])
        response = Response(status=204)
        WebCookies(self.config).clear_session(response)
        return response

    @endpoint(
        "DELETE",
        "/api/v1/sessions",
        summary="Log out everywhere",
        tags=("sessions",),
        response_schema=EndedSchema,
        errors=(401, 503, 504),
        auth="session",
    )
    def logout_everywhere(self, request):
        """Ends every session of the account, this one included."""
        principal = self._principal(request)
        answer = self.identity.end_all_sessions(principal["account_id"], "user")
        self.sessions.evict_account(principal["account_id"])
        return 200, reshape(EndedSchema(), answer)

    @endpoint(
        "GET",
        "/api/v1/me",
        summary="My account",
        tags=("accounts",),
        response_schema=ProfileSchema,
        errors=(401, 503, 504),
        auth="session",
    )
    def me(self, request):
        """Phone, email and ID number masked.

        `curl -s localhost:8000/api/v1/me -H "Authorization: Bearer $TOKEN"
        -H 'X-Device-Id: my-phone-1'`
        """
        return 200, self._account_call(request, "me", ProfileSchema())

    @endpoint(
        "POST",
        "/api/v1/username-recovery",
        summary="Find my login names",
        tags=("accounts",),
        request_schema=UsernameRecoverySchema,
        response_schema=LoginNamesSchema,
        errors=(400, 404, 422, 429, 503, 504),
    )
    def recover_username(self, request):
        """ID number + name + an image captcha (`POST /api/v1/captchas`) →
        login names, masked. 422 `captcha_invalid`, 404 `no_match`, 429
        `too_frequent` after 5 failures (an hour's cooling period).

        `curl -s -X POST localhost:8000/api/v1/username-recovery
        -H 'Content-Type: application/json' -d '{"id_number": "11010519491231002X",
        "name": "张三", "captcha_id": "…", "captcha_answer": "AB3D"}'`
        """
        body = load_body(request, UsernameRecoverySchema())
        answer = self.identity.recover_username(
            {
                **body,
                "captcha_id": str(body["captcha_id"]),
                "client_ip": client_ip(request, self.config),
            }
        )
        return 200, reshape(LoginNamesSchema(), answer)

    # -- profile -----------------------------------------------------------
    @endpoint(
        "PUT",
        "/api/v1/me/phone",
        summary="Change my phone",
        tags=("profile",),
        request_schema=PhoneChangeSchema,
        response_schema=PhoneChangedSchema,
        errors=(400, 401, 403, 422, 429, 503, 504),
        auth="session",
    )
    def change_phone(self, request):
        """Password + a `change_phone` code sent to the new phone.

        `curl -s -X PUT localhost:8000/api/v1/me/phone -H "Authorization: Bearer $TOKEN"
        -H 'X-Device-Id: my-phone-1' -H 'Content-Type: application/json'
        -d '{"password": "…", "new_phone": "13912345678", "code": "123456"}'`
        """
        return 200, self._account_call(
            request, "change_phone", PhoneChangedSchema(), PhoneChangeSchema()
        )

    @endpoint(
        "PUT",
        "/api/v1/me/email",
        summary="Change my email",
        tags=("profile",),
        request_schema=EmailChangeSchema,
        response_schema=EmailChangedSchema,
        errors=(400, 401, 403, 409, 422, 429, 503, 504),
        auth="session",
    )
    def change_email(self, request):
        """Password + a `change_email` code sent to the new address."""
        return 200, self._account_call(
            request, "change_email", EmailChangedSchema(), EmailChangeSchema()
        )

    @endpoint(
        "PUT",
        "/api/v1/me/security-questions",
        summary="Set my three security questions",
        tags=("profile",),
        request_schema=SecurityQuestionsSchema,
        response_schema=QuestionsSetSchema,
        errors=(400, 401, 403, 422, 429, 503, 504),
        auth="session",
    )
    def set_security_questions(self, request):
        """Answers are normalised (case, width, spaces, punctuation,
        traditional/simplified) and stored hashed."""
        return 200, self._account_call(
            request,
            "set_security_questions",
            QuestionsSetSchema(),
            SecurityQuestionsSchema(),
        )

    @endpoint(
        "POST",
        "/api/v1/me/guardian",
        summary="Bind a guardian phone (children under 14)",
        tags=("profile",),
        request_schema=GuardianSchema,
        response_schema=GuardianSetSchema,
        errors=(400, 401, 422, 429, 503, 504),
        auth="session",
    )
    def set_guardian(self, request):
        """A `guardian_check` code sent to the guardian's phone."""
        return 200, self._account_call(
            request, "set_guardian", GuardianSetSchema(), GuardianSchema()
        )

    # -- authentication info ----------------------------------------------
    @endpoint(
        "GET",
        "/api/v1/me/auth-info/permissions",
        summary="Which authentication fields may change now",
        tags=("profile",),
        response_schema=PermissionsSchema,
        errors=(401, 503, 504),
        auth="session",
    )
    def auth_info_permissions(self, request):
        """`{"fields": {"school_code": {"changeable": false, "reason":
        "school_arranged_course", "unlocks_at": "…"}, …}}`"""
        return 200, self._account_call(
            request, "auth_info_permissions", PermissionsSchema()
        )

    @endpoint(
        "POST",
        "/api/v1/me/auth-info",
        summary="Change authentication info",
        tags=("profile",),
        request_schema=AuthInfoChangeSchema,
        response_schema=AuthInfoChangedSchema,
        errors=(400, 401, 403, 409, 422, 429, 503, 504),
        auth="session",
    )
    def change_auth_info(self, request):
        """A `change_auth_info` code to the bound phone, then the fields to
        change. 422 `field_locked` lists `locked_fields` with `reason` and
        `unlocks_at`. Changing school, name or student number sets registry
        verification back to `pending`."""
        return 200, self._account_call(
            request, "change_auth_info", AuthInfoChangedSchema(), AuthInfoChangeSchema()
        )

    # -- deactivation ------------------------------------------------------
    @endpoint(
        "GET",
        "/api/v1/me/deactivation",
        summary="May I close my account?",
        tags=("profile",),
        response_schema=DeactivationStatusSchema,
        errors=(401, 503, 504),
        auth="session",
    )
    def deactivation_status(self, request):
        """`{"eligible": false, "unmet": [{"condition": "wallet_balance", …}]}`"""
        return 200, self._account_call(
            request, "deactivation_status", DeactivationStatusSchema()
        )

    @endpoint(
        "POST",
        "/api/v1/me/deactivation",
        summary="Close my account (immediate, irreversible)",
        tags=("profile",),
        request_schema=DeactivateSchema,
        response_schema=DeactivatedSchema,
        errors=(400, 401, 422, 429, 503, 504),
        auth="session",
    )
    def deactivate(self, request):
        """A `deactivate` code to the bound phone. 422 `not_eligible` with `unmet`."""
        principal = self._principal(request)
        body = load_body(request, DeactivateSchema())
        answer = self.identity.deactivate(
            {**body, "account_id": principal["account_id"]}
        )
        self.sessions.evict_account(principal["account_id"])
        return 200, reshape(DeactivatedSchema(), answer)

    # -- linked identities --------------------------------------------------
    @endpoint(
        "POST",
        "/api/v1/me/links",
        summary="Link a WeChat or Alipay identity",
        tags=("profile",),
        request_schema=LinkSchema,
        response_schema=LinkedSchema,
        status=201,
        errors=(400, 401, 403, 409, 422, 503, 504),
        auth="session",
    )
    def link_identity(self, request):
        """`assertion`: the provider's signed JWT (`sub`, `iss`, `aud`, `exp`).
        Afterwards `POST /api/v1/sessions {"provider", "assertion"}` logs in."""
        return 201, self._account_call(
            request, "link_identity", LinkedSchema(), LinkSchema()
        )

    @endpoint(
        "DELETE",
        "/api/v1/me/links/{provider}",
        summary="Unlink a provider",
        tags=("profile",),
        response_schema=LinkedSchema,
        errors=(401, 404, 503, 504),
        auth="session",
    )
    def unlink_identity(self, request, provider):
        principal = self._principal(request)
        answer = self.identity.unlink_identity(principal["account_id"], provider)
        return 200, reshape(LinkedSchema(), answer)

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
        body = load_body(request, AccountFactsSchema())
        answer = self.identity.set_account_facts(
            {
                **body,
                "as_of": body["as_of"].isoformat(),
                "account_id": account_id,
            }
        )
        return 200, reshape(AccountFactsStoredSchema(), answer)
