"""Operations surface (``INTERNAL_API_TOKEN``): onboarding schools, their
API tokens, staff roles. Mixed into ``GatewayService``."""

from services.common.rules.roles import SCHOOL_CODE_PATTERN
from services.gateway.auth import require_internal
from services.gateway.http import endpoint, load_body, reshape
from services.gateway.schemas import (
    RolesSchema,
    RolesSetSchema,
    SchoolOnboardSchema,
    SchoolTokenSchema,
)

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
        body = load_body(request, SchoolOnboardSchema())
        answer = self.registry_sync.onboard_school({**body, "actor": INTERNAL_ACTOR})
        return 201, reshape(SchoolTokenSchema(), answer)

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
        return 201, reshape(SchoolTokenSchema(), answer)

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
        body = load_body(request, RolesSchema())
        answer = self.identity.set_roles(
            {**body, "account_id": account_id, "actor": INTERNAL_ACTOR}
        )
        # This instance forgets the account's principals now; the others on
        # the roles_changed broadcast, moments later.
        self.sessions.evict_account(str(answer["account_id"]))
        return 200, reshape(RolesSetSchema(), answer)
