"""Admins' surface (session tokens of accounts with a staff role): a school
admin acts only for its own school, ops for any. Mixed into ``GatewayService``."""

from services.gateway.auth import require_admin_of
from services.gateway.http import endpoint, reshape
from services.gateway.internal import SCHOOL_CODE_PATH
from services.gateway.schemas import SchoolInfoSchema

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
