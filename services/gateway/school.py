"""School systems' surface (``Authorization: Bearer <school API token>``,
one token per school, scoped to it). Mixed into ``GatewayService``; SCIM
and OneRoster join here."""

import base64
import json

from services.common.contract.errors import (
    InvalidRequest,
    RuleViolation,
    find_nul,
)
from services.gateway.http import endpoint, load_body, read_body, reshape
from services.gateway.school_schemas import (
    ChangeWindowItemSchema,
    CurrentTermSchema,
    CurrentTermSetSchema,
    EnrollmentPushItemSchema,
    ImportQueuedSchema,
    ImportStateSchema,
    PushResultSchema,
    SchoolSelfSchema,
)

MAX_PUSH_ITEMS = 10_000


def _items(request):
    """A JSON array body (at most MAX_PUSH_ITEMS items); the items are
    checked one by one by registry_sync."""
    try:
        items = json.loads(read_body(request) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("invalid_json") from None
    if not isinstance(items, list) or len(items) > MAX_PUSH_ITEMS:
        raise InvalidRequest(
            "invalid_request",
            {"errors": {"body": [f"a JSON array of at most {MAX_PUSH_ITEMS} items"]}},
        )
    nul_at = find_nul(items)
    if nul_at:
        raise InvalidRequest("invalid_request", {"errors": {nul_at: ["NUL"]}})
    return items


def _batch_answer(answer):
    """200 when every item was taken; 422 ``batch_partially_refused`` (the
    good items are kept) naming each refused item by index."""
    answer = reshape(PushResultSchema, answer)
    if answer["refused"]:
        raise RuleViolation("batch_partially_refused", answer)
    return 200, answer


# A zip of a large school's full roster (100k students with every file) is
# a few MB; beyond this it is refused before it is read.
MAX_ROSTER_BYTES = 20 * 1024 * 1024
IMPORT_ID_PATH = {"import_id": {"type": "string", "format": "uuid"}}


__all__ = ["SchoolSystemEndpoints"]


class SchoolSystemEndpoints:
    """Needs ``school_auth`` and ``registry_sync``."""

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
        return 200, reshape(SchoolSelfSchema, self.school_auth(request, "school.me"))

    @endpoint(
        "POST",
        "/api/v1/school/roster-files",
        summary="Hand in a OneRoster 1.1/1.2 CSV zip (bulk or delta, per its manifest)",
        tags=("school systems",),
        response_schema=ImportQueuedSchema,
        status=202,
        errors=(400, 401, 503, 504),
        auth="school",
        body="roster",
        request_body={
            "required": True,
            "content": {
                "application/octet-stream": {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": "the zip (application/zip is read the same way)",
                    }
                }
            },
        },
    )
    def roster_file(self, request):
        """Imported in the background, one import at a time per school; read
        the outcome at `GET /api/v1/school/roster-files/{import_id}`.
        `curl -s -X POST localhost:8000/api/v1/school/roster-files
        -H "Authorization: Bearer $SCHOOL_TOKEN" -H 'Content-Type: application/zip'
        --data-binary @roster.zip` → 202 `{"import_id": "…", "status": "queued"}`"""
        school = self.school_auth(request, "oneroster.upload")
        if (request.content_length or 0) > MAX_ROSTER_BYTES:
            raise InvalidRequest("package_too_large")
        upload = request.files.get("file")
        package = (
            upload.read(MAX_ROSTER_BYTES + 1)
            if upload
            else read_body(request, json_text=False)
        )
        if len(package) > MAX_ROSTER_BYTES:
            raise InvalidRequest("package_too_large")
        # A zip starts with a local file header (or is an empty archive's end
        # record); anything else is refused here, not after a worker started.
        if not package.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            raise InvalidRequest("package_not_zip")
        answer = self.registry_sync.start_import(
            {
                "school_code": school["school_code"],
                "package_b64": base64.b64encode(package).decode("ascii"),
            }
        )
        return 202, reshape(ImportQueuedSchema, answer)

    @endpoint(
        "GET",
        "/api/v1/school/roster-files/{import_id}",
        summary="An import's status, progress per file and per-row errors",
        tags=("school systems",),
        response_schema=ImportStateSchema,
        errors=(400, 401, 404, 503, 504),
        auth="school",
        path_schemas=IMPORT_ID_PATH,
    )
    def roster_file_status(self, request, import_id):
        """404 `import_not_found` for another school's import.
        `curl -s localhost:8000/api/v1/school/roster-files/$IMPORT
        -H "Authorization: Bearer $SCHOOL_TOKEN"`"""
        school = self.school_auth(request, "oneroster.status")
        answer = self.registry_sync.import_status(
            {"school_code": school["school_code"], "import_id": import_id}
        )
        return 200, reshape(ImportStateSchema, answer)

    @endpoint(
        "PUT",
        "/api/v1/school/enrollments",
        summary="Push course enrolments (current-term ones drive identity's locks)",
        tags=("school systems",),
        request_schema=EnrollmentPushItemSchema(many=True),
        response_schema=PushResultSchema,
        errors=(400, 401, 404, 422, 503, 504),
        auth="school",
        body="batch",
    )
    def push_enrollments(self, request):
        """Idempotent and order-safe: the newest `as_of` wins; an item older
        than what is kept changes nothing. 422 `batch_partially_refused`
        lists bad items by index — the good ones are kept.
        `curl -s -X PUT localhost:8000/api/v1/school/enrollments
        -H "Authorization: Bearer $SCHOOL_TOKEN" -H 'Content-Type: application/json'
        -d '[{"student_number": "2024001", "course_id": "MATH101", "term": "2026-1",
        "kind": "school_arranged", "exam_ended": false, "grades_published": false}]'`"""
        school = self.school_auth(request, "school.enrollments")
        answer = self.registry_sync.push_enrollments(
            {"school_code": school["school_code"], "items": _items(request)}
        )
        return _batch_answer(answer)

    @endpoint(
        "PUT",
        "/api/v1/school/change-windows",
        summary="Push windows in which locked authentication fields may change",
        tags=("school systems",),
        request_schema=ChangeWindowItemSchema(many=True),
        response_schema=PushResultSchema,
        errors=(400, 401, 404, 422, 503, 504),
        auth="school",
        body="batch",
    )
    def push_change_windows(self, request):
        """A window without `window_id` is identified by its fields and times,
        so pushing it again is harmless; `cancelled: true` closes one.
        `curl -s -X PUT localhost:8000/api/v1/school/change-windows
        -H "Authorization: Bearer $SCHOOL_TOKEN" -H 'Content-Type: application/json'
        -d '[{"fields": ["name", "student_number"], "starts_at": "2026-09-01T00:00:00Z",
        "ends_at": "2026-09-15T00:00:00Z"}]'`"""
        school = self.school_auth(request, "school.change_windows")
        answer = self.registry_sync.push_change_windows(
            {"school_code": school["school_code"], "items": _items(request)}
        )
        return _batch_answer(answer)

    @endpoint(
        "PUT",
        "/api/v1/school/current-term",
        summary="Set the school's current term explicitly (null: from academicSessions)",
        tags=("school systems",),
        request_schema=CurrentTermSchema,
        response_schema=CurrentTermSetSchema,
        errors=(400, 401, 404, 503, 504),
        auth="school",
    )
    def set_current_term(self, request):
        """`curl -s -X PUT localhost:8000/api/v1/school/current-term
        -H "Authorization: Bearer $SCHOOL_TOKEN" -H 'Content-Type: application/json'
        -d '{"term": "2026-1"}'`"""
        school = self.school_auth(request, "school.current_term")
        body = load_body(request, CurrentTermSchema)
        answer = self.registry_sync.set_current_term(
            {"school_code": school["school_code"], "term": body["term"]}
        )
        return 200, reshape(CurrentTermSetSchema, answer)
