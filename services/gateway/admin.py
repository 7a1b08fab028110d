"""Admins' surface (session tokens of accounts with a staff role): a school
admin acts only for its own school, ops for any. Mixed into ``GatewayService``."""

import base64

from werkzeug.wrappers import Response

from services.common.contract.errors import InvalidRequest
from services.gateway.admin_schemas import (
    ManualLinkSchema,
    ReviewDecisionSchema,
    ReviewPageSchema,
    SchoolInfoSchema,
    UnmatchedPageSchema,
)
from services.gateway.auth import require_admin_of, require_staff
from services.gateway.http import (
    PAGE_PARAMETERS,
    endpoint,
    load_body,
    query_int,
    reshape,
)
from services.gateway.internal import ACCOUNT_ID_PATH, SCHOOL_CODE_PATH
from services.gateway.schemas import (
    RegistryStateSchema,
    ReviewSchema,
    ScimSourcesAnswerSchema,
    ScimSourcesSetSchema,
)

UNMATCHED_PARAMETERS = (
    {
        "in": "query",
        "name": "status",
        "required": False,
        "schema": {"type": "string", "enum": ["pending", "failed"]},
    },
    {
        "in": "query",
        "name": "limit",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
    },
    {
        "in": "query",
        "name": "offset",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 1000000},
    },
)


REVIEW_ID_PATH = {"review_id": {"type": "string", "format": "uuid"}}
REVIEW_PARAMETERS = (
    {
        "in": "query",
        "name": "status",
        "required": False,
        "schema": {"type": "string", "enum": ["open", "approved", "rejected"]},
    },
    *PAGE_PARAMETERS,
)

__all__ = ["AdminEndpoints"]


class AdminEndpoints:
    @endpoint(
        "GET",
        "/api/v1/admin/schools/{code}",
        summary="A school's record (its admins and ops)",
        tags=("admin",),
        response_schema=SchoolInfoSchema,
        errors=(400, 401, 403, 404, 503, 504),
        auth="session",
        path_schemas=SCHOOL_CODE_PATH,
    )
    def view_school(self, request, code):
        """403 `not_your_school` for another school's admin, `role_required`
        without a staff role; audited. `curl -s localhost:8000/api/v1/admin/schools/BJ101
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: …'`"""
        principal = self.principal(request)
        require_admin_of(principal, code)
        answer = self.registry_sync.view_school(
            {"code": code, "actor": f"account:{principal['account_id']}"}
        )
        return 200, reshape(SchoolInfoSchema, answer)

    @endpoint(
        "PUT",
        "/api/v1/admin/schools/{code}/scim-sources",
        summary="Where the school's SCIM student numbers and ID numbers come from",
        tags=("admin",),
        request_schema=ScimSourcesSetSchema,
        response_schema=ScimSourcesAnswerSchema,
        errors=(400, 401, 403, 404, 503, 504),
        auth="session",
        path_schemas=SCHOOL_CODE_PATH,
    )
    def set_school_scim_sources(self, request, code):
        """The school's admin sets it for its own identity provider (ops can
        too, on the internal surface); audited with the admin's account.
        `curl -s -X PUT localhost:8000/api/v1/admin/schools/BJ101/scim-sources
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: …' -H 'Content-Type: application/json'
        -d '{"sources": {"student_number": ["employeeNumber"]}}'`"""
        actor = self._school_admin(request, code)
        body = load_body(request, ScimSourcesSetSchema)
        answer = self.registry_sync.set_scim_sources(
            {"code": code, "sources": body["sources"], "actor": actor}
        )
        return 200, reshape(ScimSourcesAnswerSchema, answer)

    def _school_admin(self, request, code):
        principal = self.principal(request)
        require_admin_of(principal, code)
        return f"account:{principal['account_id']}"

    @endpoint(
        "GET",
        "/api/v1/admin/schools/{code}/unmatched",
        summary="Students whose registry verification failed or is pending",
        tags=("admin",),
        response_schema=UnmatchedPageSchema,
        errors=(400, 401, 403, 503, 504),
        auth="session",
        path_schemas=SCHOOL_CODE_PATH,
        parameters=UNMATCHED_PARAMETERS,
    )
    def unmatched(self, request, code):
        """Newest first, with the reason and the differing fields (never the
        registry's values); `?status=failed|pending&limit=50&offset=0`.
        `curl -s 'localhost:8000/api/v1/admin/schools/BJ101/unmatched?status=failed'
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: …'`"""
        actor = self._school_admin(request, code)
        status = request.args.get("status")
        if status not in (None, "pending", "failed"):
            raise InvalidRequest("invalid_request", {"errors": {"status": ["unknown"]}})
        answer = self.registry_sync.list_unmatched(
            {
                "school_code": code,
                "actor": actor,
                "status": status,
                "limit": query_int(request, "limit", 50, 1, 200),
                "offset": query_int(request, "offset", 0, 0, 1_000_000),
            }
        )
        return 200, reshape(UnmatchedPageSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/admin/schools/{code}/students/{account_id}/refresh",
        summary="Re-run registry matching for one student",
        tags=("admin",),
        response_schema=RegistryStateSchema,
        errors=(400, 401, 403, 404, 409, 503, 504),
        auth="session",
        path_schemas={**SCHOOL_CODE_PATH, **ACCOUNT_ID_PATH},
    )
    def refresh_student(self, request, code, account_id):
        """Audited. 404 `verification_not_found` for a student of another school.
        `curl -s -X POST localhost:8000/api/v1/admin/schools/BJ101/students/$ACCOUNT/refresh
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: …'`"""
        actor = self._school_admin(request, code)
        answer = self.registry_sync.refresh_verification(
            {"school_code": code, "account_id": account_id, "actor": actor}
        )
        return 200, reshape(RegistryStateSchema, answer)

    @endpoint(
        "POST",
        "/api/v1/admin/schools/{code}/links",
        summary="Link an account to a registry record by hand (with a reason)",
        tags=("admin",),
        request_schema=ManualLinkSchema,
        response_schema=RegistryStateSchema,
        errors=(400, 401, 403, 404, 409, 422, 503, 504),
        auth="session",
        path_schemas=SCHOOL_CODE_PATH,
    )
    def link_student(self, request, code):
        """The account passes while the record stays active; audited.
        404 `student_record_not_found`, 422 `record_inactive` / `record_claimed`,
        403 `link_not_allowed` for an account verified at another school
        (only accounts that submitted to this school or hold no passed
        verification may be linked; the refusal is audited).
        `curl -s -X POST localhost:8000/api/v1/admin/schools/BJ101/links
        -H "Authorization: Bearer $TOKEN" -H 'X-Device-Id: …'
        -H 'Content-Type: application/json'
        -d '{"account_id": "…", "student_number": "2024001", "reason": "姓名录入有误"}'`"""
        actor = self._school_admin(request, code)
        body = load_body(request, ManualLinkSchema)
        answer = self.registry_sync.link_verification(
            {
                **body,
                "account_id": str(body["account_id"]),
                "school_code": code,
                "actor": actor,
            }
        )
        return 200, reshape(RegistryStateSchema, answer)

    # -- reviewers ---------------------------------------------------------------
    # -- reviewers -----------------------------------------------------------------------------
    def _reviewer(self, request):
        principal = self.principal(request)
        require_staff(principal, "reviewer", "ops")
        return f"account:{principal['account_id']}"

    @endpoint(
        "GET",
        "/api/v1/admin/reviews",
        summary="Review queue: duplicate-ID photos and disputed recoveries",
        tags=("admin",),
        response_schema=ReviewPageSchema,
        errors=(400, 401, 403, 503, 504),
        auth="session",
        parameters=REVIEW_PARAMETERS,
    )
    def list_reviews(self, request):
        """Role `reviewer` or `ops` (403 `role_required`); oldest first.
        `curl -s 'localhost:8000/api/v1/admin/reviews?status=open'
        -H "Authorization: Bearer $TOKEN"`"""
        actor = self._reviewer(request)
        status = request.args.get("status", "open")
        if status not in ("open", "approved", "rejected"):
            raise InvalidRequest("invalid_request", {"errors": {"status": ["unknown"]}})
        answer = self.recovery.list_reviews(
            {
                "actor": actor,
                "status": status,
                "limit": query_int(request, "limit", 20, 1, 100),
                "offset": query_int(request, "offset", 0, 0, 1_000_000),
            }
        )
        return 200, reshape(ReviewPageSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/admin/reviews/{review_id}/photo",
        summary="A review's photo (re-encoded JPEG)",
        tags=("admin",),
        errors=(400, 401, 403, 404, 503, 504),
        auth="session",
        path_schemas=REVIEW_ID_PATH,
        media_type="image/jpeg",
    )
    def review_photo(self, request, review_id):
        """Audited. `curl -s localhost:8000/api/v1/admin/reviews/$RID/photo
        -H "Authorization: Bearer $TOKEN" -o photo.jpg`"""
        actor = self._reviewer(request)
        answer = self.recovery.review_photo({"actor": actor, "review_id": review_id})
        return Response(
            base64.b64decode(answer["jpeg_b64"]),
            status=200,
            mimetype="image/jpeg",
            headers={"Cache-Control": "no-store"},
        )

    @endpoint(
        "POST",
        "/api/v1/admin/reviews/{review_id}/decision",
        summary="Decide a review (approve or reject, with a reason)",
        tags=("admin",),
        request_schema=ReviewDecisionSchema,
        response_schema=ReviewSchema,
        errors=(400, 401, 403, 404, 409, 503, 504),
        auth="session",
        path_schemas=REVIEW_ID_PATH,
    )
    def decide_review(self, request, review_id):
        """Approving a photo moves the ID number to the student's account (the
        old account keeps existing, loses only the binding, and is told);
        approving a dispute unlocks the account. 409 `review_decided`.
        `curl -s -X POST localhost:8000/api/v1/admin/reviews/$RID/decision
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json'
        -d '{"approve": true, "reason": "照片清晰，人证一致"}'`"""
        actor = self._reviewer(request)
        body = load_body(request, ReviewDecisionSchema)
        answer = self.recovery.decide_review(
            {**body, "actor": actor, "review_id": review_id}
        )
        return 200, reshape(ReviewSchema, answer)
