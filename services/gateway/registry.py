"""Registry verification (学籍核验) for student apps (session tokens).
Mixed into ``GatewayService``: identity says whether a minor's guardian is
verified, registry_sync decides the outcome."""

from services.common.contract.errors import RuleViolation
from services.gateway.http import endpoint, load_body, reshape
from services.gateway.schemas import (
    CorrectionRequestSchema,
    RegistryStateSchema,
    RegistryVerificationSchema,
)

__all__ = ["RegistryEndpoints"]


class RegistryEndpoints:
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
        account_id = self._principal(request)["account_id"]
        body = load_body(request, RegistryVerificationSchema())
        guardian = self.identity.me(account_id)["guardian"]
        if guardian["required"] and not guardian["verified"]:
            raise RuleViolation("guardian_required")
        answer = self.registry_sync.submit_verification(
            {**body, "account_id": account_id}
        )
        return 202, reshape(RegistryStateSchema(), answer)

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
        account_id = self._principal(request)["account_id"]
        answer = self.registry_sync.verification_status({"account_id": account_id})
        return 200, reshape(RegistryStateSchema(), answer)

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
        account_id = self._principal(request)["account_id"]
        body = load_body(request, CorrectionRequestSchema())
        answer = self.registry_sync.request_correction(
            {"account_id": account_id, "note": body["note"]}
        )
        return 200, reshape(RegistryStateSchema(), answer)
