"""Recovery surface: forgot phone (no session: the flow's own token), the
vouch page's calls (the classmate's session), password reset (no session),
duplicate-ID resolution and the inbox (the student's session). Mixed into
``GatewayService``; needs ``principal``, ``recovery`` and ``config``. The
review queue is the admin surface's (``admin.py``)."""

import base64
import re

from services.common.contract.errors import InvalidRequest
from services.gateway.auth import device_id
from services.gateway.http import (
    PAGE_PARAMETERS,
    client_ip,
    endpoint,
    load_body,
    query_int,
    reshape,
)
from services.gateway.recovery_schemas import (
    AssistanceCreatedSchema,
    AssistanceRequestSchema,
    DuplicateStatusSchema,
    IdNotMeResultSchema,
    InboxAnsweredSchema,
    InboxAnswerSchema,
    InboxPageSchema,
    InboxReadSchema,
    NewPhoneSchema,
    NotMeResultSchema,
    PasswordResetDoneSchema,
    PasswordResetSchema,
    PhoneRecoveryProgressSchema,
    PhoneRecoveryStartedSchema,
    PhoneRecoveryStartSchema,
    ResetCodeRequestSchema,
    ResetCodeSentSchema,
    ResetMethodsSchema,
    ShareLinkSchema,
    VouchContextSchema,
    VouchInvitationSchema,
    VouchInvitedSchema,
    VouchResultSchema,
)
from services.gateway.schemas import (
    RECOVERY_TOKEN_PATTERN,
    SHARE_TOKEN_PATTERN,
    ReviewSchema,
)

__all__ = ["RecoveryEndpoints"]

RECOVERY_ID_PATH = {"recovery_id": {"type": "string", "format": "uuid"}}
SHARE_TOKEN_PATH = {"share_token": {"type": "string", "pattern": SHARE_TOKEN_PATTERN}}
NOT_ME_PATH = {"token": {"type": "string", "pattern": SHARE_TOKEN_PATTERN}}
MESSAGE_ID_PATH = {"message_id": {"type": "string", "format": "uuid"}}
RECOVERY_TOKEN_HEADER = (
    {
        "in": "header",
        "name": "X-Recovery-Token",
        "required": True,
        "schema": {"type": "string", "pattern": RECOVERY_TOKEN_PATTERN},
        "description": "the recovery_token the first step answered",
    },
)
LOGIN_PARAMETER = (
    {
        "in": "query",
        "name": "login",
        "required": True,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 254,
            "pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$",
        },  # fmt: skip
        "description": "phone, email, ID number or passport ID",
    },
)
PHOTO_MAX_BYTES = 5 * 1024 * 1024
VOUCH_WARNING = (
    "请确认是你认识的同班同学本人在找回账号。助力后，对方的手机号将被换绑、密码被重置；"
    "替他人助力冒领账号须承担责任。如有疑问，请先当面或电话联系对方。",
    "Make sure this is a classmate you know, recovering their own account. Your "
    "vouch rebinds their phone and resets their password; vouching for an impostor "
    "has consequences. If in doubt, talk to them in person or by phone first.",
)
_RECOVERY_TOKEN = re.compile(RECOVERY_TOKEN_PATTERN)


def _recovery_token(request):
    token = (request.headers.get("X-Recovery-Token") or "").strip()
    if not _RECOVERY_TOKEN.match(token):
        raise InvalidRequest("recovery_token_required")
    return token


class RecoveryEndpoints:
    # -- forgot phone ------------------------------------------------------------------
    @endpoint(
        "POST",
        "/api/v1/phone-recoveries",
        summary="Forgot phone, step 1: who you are (school, student number, name)",
        tags=("recovery",),
        request_schema=PhoneRecoveryStartSchema,
        response_schema=PhoneRecoveryStartedSchema,
        status=201,
        errors=(400, 429, 503, 504),
        links={
            name: {
                "target": target,
                "description": "Go on with the flow, holding its requester token.",
                "parameters": {
                    "path.recovery_id": "$response.body#/recovery_id",
                    "header.X-Recovery-Token": "$response.body#/recovery_token",
                },
            }
            for name, target in (
                (
                    "SetNewPhone",
                    ("POST", "/api/v1/phone-recoveries/{recovery_id}/new-phone"),
                ),
                ("ReadFlow", ("GET", "/api/v1/phone-recoveries/{recovery_id}")),
                (
                    "CancelFlow",
                    ("POST", "/api/v1/phone-recoveries/{recovery_id}/cancel"),
                ),
            )
        },
    )
    def start_phone_recovery(self, request):
        """Always 201 with a hint of the old phone: whether or not the three
        match an account is not told here (no `no_match`) — a flow that
        matched nobody fails at the old phone like a wrong guess. Throttled
        per client address and per school + student number (429
        `too_frequent`). `curl -s -X POST localhost:8000/api/v1/phone-recoveries
        -H 'Content-Type: application/json' -d '{"school_code": "BJ101",
        "student_number": "2024001", "name": "张三"}'` → 201 `{"recovery_id": "…",
        "recovery_token": "…", "old_phone_hint": "138****78", "expires_at": "…"}`"""
        body = load_body(request, PhoneRecoveryStartSchema)
        answer = self.recovery.start_phone_recovery(
            {**body, "client_ip": client_ip(request, self.config)}
        )
        return 201, reshape(PhoneRecoveryStartedSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/phone-recoveries/{recovery_id}/new-phone",
        summary="Forgot phone, step 2: old phone, new phone + its code, new password",
        tags=("recovery",),
        request_schema=NewPhoneSchema,
        response_schema=ShareLinkSchema,
        errors=(400, 404, 409, 422, 429, 503, 504),
        path_schemas=RECOVERY_ID_PATH,
        parameters=RECOVERY_TOKEN_HEADER,
        links={
            name: {
                "target": (method, "/api/v1/vouches/{share_token}"),
                "description": "A classmate opens the shared link and vouches.",
                "parameters": {"path.share_token": "$response.body#/share_token"},
            }
            for name, method in (("SeeVouchPage", "GET"), ("Vouch", "POST"))
        },
    )
    def set_recovery_phone(self, request, recovery_id):
        """The old phone typed in full (422 `old_phone_mismatch` with
        `attempts_left`; the 5th ends the flow), the new phone with a
        `recover_phone` code sent to it, the new password. 200 with the share
        link to send to two classmates. 409 `recovery_step_invalid` when the
        flow is not at this step. `curl -s -X POST
        localhost:8000/api/v1/phone-recoveries/$ID/new-phone -H "X-Recovery-Token: $RT"
        -H 'Content-Type: application/json' -d '{"old_phone": "13812345678",
        "new_phone": "13987654321", "code": "123456", "new_password": "…"}'`"""
        token = _recovery_token(request)
        body = load_body(request, NewPhoneSchema)
        answer = self.recovery.set_new_phone(
            {
                **body,
                "recovery_id": recovery_id,
                "recovery_token": token,
                "client_ip": client_ip(request, self.config),
            }
        )
        return 200, reshape(ShareLinkSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/phone-recoveries/{recovery_id}",
        summary="Forgot phone: progress (status, vouches so far)",
        tags=("recovery",),
        response_schema=PhoneRecoveryProgressSchema,
        errors=(400, 404, 503, 504),
        path_schemas=RECOVERY_ID_PATH,
        parameters=RECOVERY_TOKEN_HEADER,
    )
    def phone_recovery_progress(self, request, recovery_id):
        """`curl -s localhost:8000/api/v1/phone-recoveries/$ID -H "X-Recovery-Token: $RT"`"""
        answer = self.recovery.phone_recovery_progress(
            {"recovery_id": recovery_id, "recovery_token": _recovery_token(request)}
        )
        return 200, reshape(PhoneRecoveryProgressSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/phone-recoveries/{recovery_id}/cancel",
        summary="Forgot phone: give up (the share link dies at once)",
        tags=("recovery",),
        response_schema=PhoneRecoveryProgressSchema,
        errors=(400, 404, 409, 503, 504),
        path_schemas=RECOVERY_ID_PATH,
        parameters=RECOVERY_TOKEN_HEADER,
    )
    def cancel_phone_recovery(self, request, recovery_id):
        """`curl -s -X POST localhost:8000/api/v1/phone-recoveries/$ID/cancel
        -H "X-Recovery-Token: $RT"`"""
        answer = self.recovery.cancel_phone_recovery(
            {"recovery_id": recovery_id, "recovery_token": _recovery_token(request)}
        )
        return 200, reshape(PhoneRecoveryProgressSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/phone-recoveries/{recovery_id}/invitations",
        summary="Forgot phone: ask classmates (by student number) in their inbox",
        tags=("recovery",),
        request_schema=VouchInvitationSchema,
        response_schema=VouchInvitedSchema,
        status=202,
        errors=(400, 404, 409, 503, 504),
        path_schemas=RECOVERY_ID_PATH,
        parameters=RECOVERY_TOKEN_HEADER,
    )
    def invite_vouchers(self, request, recovery_id):
        """Up to 5 student numbers of the requester's school; each one that
        is an account gets a `vouch_request` in its inbox (a yes there is a
        vouch, with every guard). The answer does not say which numbers were
        found. `curl -s -X POST localhost:8000/api/v1/phone-recoveries/$RID/invitations
        -H "X-Recovery-Token: $RT" -H 'Content-Type: application/json'
        -d '{"student_numbers": ["2024002", "2024003"]}'`"""
        token = _recovery_token(request)
        body = load_body(request, VouchInvitationSchema)
        answer = self.recovery.invite_vouchers(
            {**body, "recovery_id": recovery_id, "recovery_token": token}
        )
        return 202, reshape(VouchInvitedSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/vouches/{share_token}",
        summary="The vouch page: who asks, the warning, the progress",
        tags=("recovery",),
        response_schema=VouchContextSchema,
        errors=(400, 401, 404, 409, 503, 504),
        auth="session",
        path_schemas=SHARE_TOKEN_PATH,
    )
    def vouch_context(self, request, share_token):
        """The classmate's own session. 404 `share_link_invalid` for a
        tampered link or one whose flow ended, 409 `share_link_expired`.
        `curl -s localhost:8000/api/v1/vouches/$SHARE -H "Authorization: Bearer $TOKEN"`"""
        account_id = self.principal(request)["account_id"]
        answer = self.recovery.vouch_context(
            {"share_token": share_token, "account_id": account_id}
        )
        answer.update(warning_zh=VOUCH_WARNING[0], warning_en=VOUCH_WARNING[1])
        return 200, reshape(VouchContextSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/vouches/{share_token}",
        summary="Vouch for a classmate (助力验证)",
        tags=("recovery",),
        response_schema=VouchResultSchema,
        errors=(400, 401, 403, 404, 409, 429, 503, 504),
        auth="session",
        path_schemas=SHARE_TOKEN_PATH,
    )
    def vouch(self, request, share_token):
        """403 `not_eligible_voucher` with a `reason`: `self`,
        `already_vouched`, `voucher_not_verified`, `requester_not_verified`,
        `other_school`, `other_class`, `recently_created`,
        `recently_verified`, `daily_cap`, `term_cap`, `voucher_limited`.
        409 `recovery_step_invalid` once the flow completed.
        `curl -s -X POST localhost:8000/api/v1/vouches/$SHARE
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: …'`"""
        account_id = self.principal(request)["account_id"]
        answer = self.recovery.vouch(
            {"share_token": share_token, "account_id": account_id}
        )
        return 200, reshape(VouchResultSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/not-me/{token}",
        summary="Not me: undo a completed phone recovery (link in the notice)",
        tags=("recovery",),
        response_schema=NotMeResultSchema,
        errors=(400, 404, 409, 503, 504),
        path_schemas=NOT_ME_PATH,
    )
    def not_me(self, request, token):
        """Within the cancel window (7 days): the account is locked, its
        sessions end, the old phone comes back where free, and a reviewer
        decides. 409 `cancel_window_over` after it.
        `curl -s -X POST localhost:8000/api/v1/not-me/$TOKEN`"""
        answer = self.recovery.report_not_me({"token": token})
        return 200, reshape(NotMeResultSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/duplicate-id/not-me/{token}",
        summary="Not me: stop an ID number moving away from my account (link in the notice)",
        tags=("recovery",),
        response_schema=IdNotMeResultSchema,
        errors=(400, 404, 409, 503, 504),
        path_schemas=NOT_ME_PATH,
    )
    def id_not_me(self, request, token):
        """Classmates vouched for another account claiming this account's ID
        number; before the move takes effect its holder may object: the move
        stops and goes to the reviewers. 409 `cancel_window_over` once it took
        effect. `curl -s -X POST localhost:8000/api/v1/duplicate-id/not-me/$TOKEN`"""
        answer = self.recovery.report_id_not_me({"token": token})
        return 200, reshape(IdNotMeResultSchema, answer)

    # -- password reset ---------------------------------------------------------------------
    @endpoint(
        "GET",
        "/api/v1/password-resets/methods",
        summary="How this login can reset its password (masked targets)",
        tags=("recovery",),
        response_schema=ResetMethodsSchema,
        errors=(400, 503, 504),
        parameters=LOGIN_PARAMETER,
    )
    def reset_methods(self, request):
        """The same shape and timing for a login no account has (derived
        from a keyed hash of the login, so asking again agrees).
        `curl -s 'localhost:8000/api/v1/password-resets/methods?login=13812345678'`"""
        login = request.args.get("login") or ""
        if not login.strip() or len(login) > 254 or "\x00" in login:
            raise InvalidRequest("invalid_request", {"errors": {"login": ["required"]}})
        answer = self.recovery.reset_methods({"login": login})
        return 200, reshape(ResetMethodsSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/password-resets/codes",
        summary="Send a reset code to the login's bound phone or email",
        tags=("recovery",),
        request_schema=ResetCodeRequestSchema,
        response_schema=ResetCodeSentSchema,
        status=202,
        errors=(400, 422, 429, 503, 504),
    )
    def send_reset_code(self, request):
        """202 with the masked target whether or not the login exists; 429
        `resend_too_soon` / `too_frequent`. `curl -s -X POST
        localhost:8000/api/v1/password-resets/codes -H 'Content-Type: application/json'
        -d '{"login": "li.si@school.edu.cn", "method": "sms"}'`"""
        body = load_body(request, ResetCodeRequestSchema)
        answer = self.recovery.send_reset_code(
            {**body, "client_ip": client_ip(request, self.config)}
        )
        return 202, reshape(ResetCodeSentSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/password-resets",
        summary="Reset the password (code or security answers)",
        tags=("recovery",),
        request_schema=PasswordResetSchema,
        response_schema=PasswordResetDoneSchema,
        errors=(400, 403, 422, 429, 503, 504),
    )
    def reset_password(self, request):
        """Ends every session, does not log in, announced on every bound
        channel. 422 `code_invalid` / `answers_incorrect`; the 3rd wrong set of
        answers locks the method for a day (429 `method_locked`).
        `curl -s -X POST localhost:8000/api/v1/password-resets
        -H 'Content-Type: application/json' -d '{"login": "13812345678",
        "method": "sms", "code": "123456", "new_password": "…"}'`"""
        body = load_body(request, PasswordResetSchema)
        answer = self.recovery.reset_password(
            {
                **body,
                "client_ip": client_ip(request, self.config),
                "device_id": device_id(request),
            }
        )
        # Every session ended: this instance forgets the account's cached
        # ones now, so a session used right after the reset is refused here;
        # the other instances on the sessions_revoked broadcast, moments later.
        self.principal.forget(str(answer["account_id"]))
        return 200, reshape(PasswordResetDoneSchema, answer)

    # -- duplicate ID ----------------------------------------------------------------------
    @endpoint(
        "POST",
        "/api/v1/me/duplicate-id/photo",
        summary="Duplicate ID: a photo of me holding my ID card, for review",
        tags=("recovery",),
        response_schema=ReviewSchema,
        status=202,
        errors=(400, 401, 409, 413, 422, 503, 504),
        auth="session",
        body="photo",
        request_body={
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"photo": {"type": "string", "format": "binary"}},
                        "required": ["photo"],
                    }
                }
            },
        },
    )
    def duplicate_photo(self, request):
        """JPEG or PNG (by content), at most 5 MB; re-encoded, EXIF dropped,
        sealed; deleted after the decision plus retention. 409
        `not_duplicate_pending` / `review_in_progress`; 422 `photo_not_image`,
        `photo_too_large`, `photo_too_small`, `photo_too_many_pixels`.
        `curl -s -X POST localhost:8000/api/v1/me/duplicate-id/photo
        -H "Authorization: Bearer $TOKEN" -F photo=@me-with-id.jpg`"""
        account_id = self.principal(request)["account_id"]
        if (request.content_length or 0) > PHOTO_MAX_BYTES + 64 * 1024:
            raise InvalidRequest("photo_too_large")
        upload = request.files.get("photo")
        if upload is None:
            raise InvalidRequest("invalid_request", {"errors": {"photo": ["required"]}})
        data = upload.read(PHOTO_MAX_BYTES + 1)
        answer = self.recovery.submit_duplicate_photo(
            {"account_id": account_id, "photo_b64": base64.b64encode(data).decode()}
        )
        return 202, reshape(ReviewSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/me/duplicate-id",
        summary="Duplicate ID: where my resolution stands",
        tags=("recovery",),
        response_schema=DuplicateStatusSchema,
        errors=(401, 503, 504),
        auth="session",
    )
    def duplicate_status(self, request):
        """Reviews with their reason and the promised answer date, assistance
        requests, requests left today. `curl -s localhost:8000/api/v1/me/duplicate-id
        -H "Authorization: Bearer $TOKEN"`"""
        account_id = self.principal(request)["account_id"]
        answer = self.recovery.duplicate_status({"account_id": account_id})
        return 200, reshape(DuplicateStatusSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/me/duplicate-id/assistance-requests",
        summary="Duplicate ID: ask a verified classmate to confirm me",
        tags=("recovery",),
        request_schema=AssistanceRequestSchema,
        response_schema=AssistanceCreatedSchema,
        status=201,
        errors=(400, 401, 409, 422, 429, 503, 504),
        auth="session",
    )
    def assistance_request(self, request):
        """Up to 5 a day (429 `assistance_daily_limit` with `resets_at`);
        422 `classmate_not_eligible` when the name + phone is not a verified
        student of my school. `curl -s -X POST
        localhost:8000/api/v1/me/duplicate-id/assistance-requests
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json'
        -d '{"classmate_name": "李四", "classmate_phone": "13912345678"}'`"""
        account_id = self.principal(request)["account_id"]
        body = load_body(request, AssistanceRequestSchema)
        answer = self.recovery.request_assistance({**body, "account_id": account_id})
        return 201, reshape(AssistanceCreatedSchema, answer)

    # -- inbox --------------------------------------------------------------------------------
    @endpoint(
        "GET",
        "/api/v1/me/inbox",
        summary="My inbox: requests to answer, outcomes, unread counts",
        tags=("recovery",),
        response_schema=InboxPageSchema,
        errors=(400, 401, 503, 504),
        auth="session",
        parameters=PAGE_PARAMETERS,
    )
    def inbox(self, request):
        """`curl -s 'localhost:8000/api/v1/me/inbox?limit=20'
        -H "Authorization: Bearer $TOKEN"`"""
        account_id = self.principal(request)["account_id"]
        answer = self.recovery.inbox(
            {
                "account_id": account_id,
                "limit": query_int(request, "limit", 20, 1, 100),
                "offset": query_int(request, "offset", 0, 0, 1_000_000),
            }
        )
        return 200, reshape(InboxPageSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/me/inbox/{message_id}/answer",
        summary="Answer a request in my inbox (yes / no)",
        tags=("recovery",),
        request_schema=InboxAnswerSchema,
        response_schema=InboxAnsweredSchema,
        errors=(400, 401, 403, 404, 409, 429, 503, 504),
        auth="session",
        path_schemas=MESSAGE_ID_PATH,
    )
    def answer_message(self, request, message_id):
        """A yes to an `assistance_request` confirms the classmate; a yes to a
        `vouch_request` vouches (403 `not_eligible_voucher` as on the vouch
        page, the message stays open). The same answer again is a no-op; the
        other one is 409 `message_answered`. `curl -s -X POST localhost:8000/api/v1/me/inbox/$MID/answer
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json'
        -d '{"approve": true}'`"""
        account_id = self.principal(request)["account_id"]
        body = load_body(request, InboxAnswerSchema)
        answer = self.recovery.answer_message(
            {**body, "account_id": account_id, "message_id": message_id}
        )
        return 200, reshape(InboxAnsweredSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/me/inbox/{message_id}/read",
        summary="Mark a message of my inbox read",
        tags=("recovery",),
        response_schema=InboxReadSchema,
        errors=(400, 401, 404, 503, 504),
        auth="session",
        path_schemas=MESSAGE_ID_PATH,
    )
    def read_message(self, request, message_id):
        """`curl -s -X POST localhost:8000/api/v1/me/inbox/$MID/read
        -H "Authorization: Bearer $TOKEN"`"""
        account_id = self.principal(request)["account_id"]
        answer = self.recovery.mark_message_read(
            {"account_id": account_id, "message_id": message_id}
        )
        return 200, reshape(InboxReadSchema, answer)
