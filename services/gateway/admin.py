"""Admins' surface (session tokens of accounts with a staff role): a school
admin acts only for its own school, ops for any. Mixed into ``GatewayService``."""

from services.common.contract.errors import InvalidRequest
from services.gateway.auth import require_admin_of
from services.gateway.http import endpoint, load_body, reshape
from services.gateway.internal import ACCOUNT_ID_PATH, SCHOOL_CODE_PATH
from services.gateway.schemas import (
    ManualLinkSchema,
    RegistryStateSchema,
    SchoolInfoSchema,
    UnmatchedPageSchema,
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


def _page_parameter(request, name, default, low, high):
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise InvalidRequest("invalid_request", {"errors": {name: ["out of range"]}})
    return value


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
        principal = self._principal(request)
        require_admin_of(principal, code)
        answer = self.registry_sync.view_school(
            {"code": code, "actor": f"account:{principal['account_id']}"}
        )
        return 200, reshape(SchoolInfoSchema(), answer)

    def _school_admin(self, request, code):
        principal = self._principal(request)
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
                "limit": _page_parameter(request, "limit", 50, 1, 200),
                "offset": _page_parameter(request, "offset", 0, 0, 1_000_000),
            }
        )
        return 200, reshape(UnmatchedPageSchema(), answer)

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
        return 200, reshape(RegistryStateSchema(), answer)

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
        body = load_body(request, ManualLinkSchema())
        answer = self.registry_sync.link_verification(
            {
                **body,
                "account_id": str(body["account_id"]),
                "school_code": code,
                "actor": actor,
            }
        )
        return 200, reshape(RegistryStateSchema(), answer)
