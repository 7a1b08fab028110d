"""The student apps' surface (web, Android, iOS): captchas and codes,
registration, sessions, the account and its authentication data,
deactivation, linked identities, and registry verification (学籍核验: identity
says whether a minor's guardian is verified, registry_sync decides the
outcome). Mixed into ``GatewayService``; needs ``principal``, ``identity``,
``verification``, ``registry_sync`` and ``config``."""

import logging
from datetime import datetime

from werkzeug.wrappers import Response

from services.common.contract.errors import (
    InvalidRequest,
    RuleViolation,
)
from services.gateway.apps_schemas import (
    AccountCreatedSchema,
    AccountRegistrationSchema,
    AuthInfoChangedSchema,
    AuthInfoChangeSchema,
    CaptchaSchema,
    CodeDeliverySchema,
    CodeIssuedSchema,
    CodeRequestSchema,
    CorrectionRequestSchema,
    DeactivatedSchema,
    DeactivateSchema,
    DeactivationStatusSchema,
    EmailChangedSchema,
    EmailChangeSchema,
    EndedSchema,
    GuardianSchema,
    GuardianSetSchema,
    LinkedSchema,
    LinkSchema,
    LoginNamesSchema,
    LoginSchema,
    PermissionsSchema,
    PhoneChangedSchema,
    PhoneChangeSchema,
    ProfileSchema,
    QuestionsSetSchema,
    RegistryVerificationSchema,
    SecurityQuestionsSchema,
    SessionSchema,
    StudentNumberRegistrationSchema,
    UsernameRecoverySchema,
)
from services.gateway.auth import (
    device_id,
)
from services.gateway.http import (
    client_ip,
    endpoint,
    json_response,
    load_body,
    reshape,
)
from services.gateway.schemas import (
    RegistryStateSchema,
)
from services.gateway.web import WebCookies

__all__ = ["AppEndpoints"]

log = logging.getLogger(__name__)


class AppEndpoints:
    def _account_call(self, request, method, answer_schema, request_schema=None):
        """The caller's account through ``identity.<method>``: with the body
        (validated by ``request_schema``) plus ``account_id`` and where the
        request came from (for the notice a change sends) when there is one,
        else with the account id alone."""
        account_id = self.principal(request)["account_id"]
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
        return 201, reshape(CaptchaSchema, self.verification.issue_captcha())

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
        # Which destinations a channel takes is verification's rule
        # (domain.checked_destination): every caller gets the same code.
        body = load_body(request, CodeRequestSchema)
        answer = self.verification.issue_code(
            {
                **body,
                "captcha_id": str(body["captcha_id"]) if body["captcha_id"] else None,
                "client_ip": client_ip(request, self.config),
            }
        )
        return 202, reshape(CodeIssuedSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/codes/{code_id}",
        summary="Where a code's message is: queued, sent, submitted, delivered, "
        "failed or expired",
        tags=("verification",),
        response_schema=CodeDeliverySchema,
        errors=(400, 404, 503, 504),
        path_schemas={
            "code_id": {"type": "string", "pattern": r"^\d{1,18}-[0-9a-f]{20}$"}
        },
    )
    def code_delivery(self, request, code_id):
        """The `code_id` of `POST /api/v1/codes`' answer is the handle (a
        keyed tag: ids cannot be walked). With an SMS gateway that sends
        receipts, a page can say "not delivered — try email" on `failed` or
        `expired` (the send was given back) instead of "sent".

        `curl -s localhost:8000/api/v1/codes/4711-3f9c2a7d5e1b8c0a6d4f` →
        `{"code_id": "…", "channel": "sms", "destination_masked": "138****5678",
        "state": "delivered", "updated_at": "…", "expires_at": "…"}`; 404
        `code_not_found`."""
        answer = self.verification.code_delivery({"code_id": code_id})
        return 200, reshape(CodeDeliverySchema, answer)

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
        body = load_body(request, AccountRegistrationSchema)
        answer = self.identity.register_by_phone(
            {**body, "device_id": device_id(request)}
        )
        return 201, reshape(AccountCreatedSchema, answer)

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
        body = load_body(request, StudentNumberRegistrationSchema)
        answer = self.identity.register_by_student_number(
            {**body, "device_id": device_id(request)}
        )
        return 201, reshape(AccountCreatedSchema, answer)

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
        body = load_body(request, LoginSchema)
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
        session = reshape(SessionSchema, answer)
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
        principal = self.principal(request)
        self.identity.logout(principal["session_id"])
        self.principal.forget(principal["account_id"])
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
        principal = self.principal(request)
        answer = self.identity.end_all_sessions(principal["account_id"], "user")
        self.principal.forget(principal["account_id"])
        return 200, reshape(EndedSchema, answer)

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
        return 200, self._account_call(request, "me", ProfileSchema)

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
        body = load_body(request, UsernameRecoverySchema)
        answer = self.identity.recover_username(
            {
                **body,
                "captcha_id": str(body["captcha_id"]),
                "client_ip": client_ip(request, self.config),
            }
        )
        return 200, reshape(LoginNamesSchema, answer)

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
            request, "change_phone", PhoneChangedSchema, PhoneChangeSchema
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
            request, "change_email", EmailChangedSchema, EmailChangeSchema
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
            QuestionsSetSchema,
            SecurityQuestionsSchema,
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
            request, "set_guardian", GuardianSetSchema, GuardianSchema
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
            request, "auth_info_permissions", PermissionsSchema
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
            request, "change_auth_info", AuthInfoChangedSchema, AuthInfoChangeSchema
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
            request, "deactivation_status", DeactivationStatusSchema
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
        principal = self.principal(request)
        body = load_body(request, DeactivateSchema)
        answer = self.identity.deactivate(
            {**body, "account_id": principal["account_id"]}
        )
        self.principal.forget(principal["account_id"])
        return 200, reshape(DeactivatedSchema, answer)

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
            request, "link_identity", LinkedSchema, LinkSchema
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
        principal = self.principal(request)
        answer = self.identity.unlink_identity(principal["account_id"], provider)
        return 200, reshape(LinkedSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/me/registry-verification",
        summary="Verify my enrolment against my school's registry",
        tags=("registry",),
        request_schema=RegistryVerificationSchema,
        response_schema=RegistryStateSchema,
        status=202,
        errors=(400, 401, 409, 422, 503, 504),
        auth="session",
    )
    def submit_registry_verification(self, request):
        """202 with `passed`, `failed` (a `code` and the differing fields,
        never the registry's values) or `pending` (the school has not synced:
        it settles by itself when the roster arrives — no resubmission).
        Under 14: 422 `guardian_required` until a guardian phone is verified.

        `curl -s -X POST localhost:8000/api/v1/me/registry-verification
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: my-phone-1'
        -H 'Content-Type: application/json' -d '{"school_code": "BJ101",
        "student_number": "2024001", "name": "张三", "class_name": "七年级1班"}'`
        """
        account_id = self.principal(request)["account_id"]
        body = load_body(request, RegistryVerificationSchema)
        guardian = self.identity.me(account_id)["guardian"]
        if guardian["required"] and not guardian["verified"]:
            raise RuleViolation("guardian_required")
        answer = self.registry_sync.submit_verification(
            {**body, "account_id": account_id}
        )
        return 202, reshape(RegistryStateSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/me/registry-verification",
        summary="Where my registry verification stands",
        tags=("registry",),
        response_schema=RegistryStateSchema,
        errors=(401, 404, 503, 504),
        auth="session",
    )
    def registry_verification(self, request):
        """404 `verification_not_found` before the first submission.
        `curl -s localhost:8000/api/v1/me/registry-verification
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: my-phone-1'`"""
        account_id = self.principal(request)["account_id"]
        answer = self.registry_sync.verification_status({"account_id": account_id})
        return 200, reshape(RegistryStateSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/me/registry-verification/correction-request",
        summary="Ask my school to correct its registry (after a failed verification)",
        tags=("registry",),
        request_schema=CorrectionRequestSchema,
        response_schema=RegistryStateSchema,
        errors=(400, 401, 404, 422, 503, 504),
        auth="session",
    )
    def request_correction(self, request):
        """The note appears in the school's unmatched list beside the fields
        that differ. 422 `verification_not_failed` unless the last outcome was
        a failure. `curl -s -X POST
        localhost:8000/api/v1/me/registry-verification/correction-request
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: my-phone-1'
        -H 'Content-Type: application/json' -d '{"note": "学籍里名字录错了一个字"}'`"""
        account_id = self.principal(request)["account_id"]
        body = load_body(request, CorrectionRequestSchema)
        answer = self.registry_sync.request_correction(
            {"account_id": account_id, "note": body["note"]}
        )
        return 200, reshape(RegistryStateSchema, answer)
