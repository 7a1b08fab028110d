"""School systems' surface (``Authorization: Bearer <school API token>``,
one token per school, scoped to it). Mixed into ``GatewayService``; SCIM
and OneRoster join here."""

from services.common.errors import Unauthenticated
from services.gateway.auth import bearer_token
from services.gateway.http import endpoint, reshape
from services.gateway.schemas import SchoolSelfSchema

__all__ = ["SchoolSystemEndpoints"]


class SchoolSystemEndpoints:
    def _school(self, request, action):
        """The school a system's token belongs to; the request is audited."""
        token = bearer_token(request)
        if len(token) > 256:  # no token of ours is that long
            raise Unauthenticated("invalid_school_token")
        return self.registry_sync.authenticate_school(
            {"token": token, "action": action}
        )

    @endpoint(
        "GET",
        "/api/v1/school/me",
        summary="Which school this API token belongs to",
        tags=("school systems",),
        response_schema=SchoolSelfSchema,
        errors=(401, 503, 504),
        auth="school",
    )
    def school_me(self, request):
        """`curl -s localhost:8000/api/v1/school/me -H "Authorization: Bearer $SCHOOL_TOKEN"`
        → `{"school_code": "BJ101", "name": "…"}`; 401 `invalid_school_token`."""
        return 200, reshape(SchoolSelfSchema(), self._school(request, "school.me"))
