"""Shapes of the registry_sync service's RPC payloads and answers."""

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from services.common.contract.fields import StrictBoolean, UtcDateTime
from services.common.contract.vocabulary import AUTH_INFO_FIELDS
from services.common.rules.roles import SCHOOL_CODE_PATTERN

__all__ = [
    "OnboardSchoolRequest",
    "RotateTokenRequest",
    "SchoolToken",
    "SchoolInfo",
    "ViewSchoolRequest",
    "AuthenticateSchoolRequest",
]

SCHOOL_CODE = validate.Regexp(SCHOOL_CODE_PATTERN, error="school_code_invalid")
ACTOR = validate.Length(1, 128)


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class _SchoolCode(_Strict):
    code = fields.String(required=True, validate=SCHOOL_CODE)

    @pre_load
    def upper_code(self, data, **kwargs):
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            data = {**data, "code": data["code"].strip().upper()}
        return data


class OnboardSchoolRequest(_SchoolCode):
    name = fields.String(required=True, validate=validate.Length(1, 128))
    region = fields.String(load_default=None, validate=validate.Length(1, 64))
    actor = fields.String(required=True, validate=ACTOR)


class RotateTokenRequest(_SchoolCode):
    actor = fields.String(required=True, validate=ACTOR)


class ViewSchoolRequest(_SchoolCode):
    actor = fields.String(required=True, validate=ACTOR)


class ScimSources(Schema):
    """Where a school's student numbers and ID numbers come from, in order
    (registry_sync/scim.py ``IDENTIFIER_SOURCES``)."""

    student_number = fields.List(
        fields.String(validate=validate.Length(1, 32)),
        load_default=None,
        validate=validate.Length(1, 4),
    )
    id_number = fields.List(
        fields.String(validate=validate.Length(1, 32)),
        load_default=None,
        validate=validate.Length(1, 3),
    )


class SetScimSourcesRequest(_SchoolCode):
    actor = fields.String(required=True, validate=ACTOR)
    sources = fields.Nested(ScimSources, required=True, allow_none=True)


class ScimSourcesAnswer(Schema):
    code = fields.String(required=True)
    sources = fields.Nested(ScimSources, required=True)
    defaults = fields.Boolean(
        required=True, metadata={"description": "true: the school set none"}
    )


class SchoolToken(Schema):
    code = fields.String(required=True)
    api_token = fields.String(required=True)


class SchoolInfo(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    region = fields.String(allow_none=True)
    token_issued_at = fields.AwareDateTime(required=True)
    created_at = fields.AwareDateTime(required=True)


SCHOOL_TOKEN = validate.Length(1, 256)
# What the school system is doing, for the audit record.
SCHOOL_ACTION = validate.Regexp(r"^[a-z][a-z0-9_.]{1,63}$")


class AuthenticateSchoolRequest(_Strict):
    token = fields.String(required=True, validate=SCHOOL_TOKEN)
    action = fields.String(required=True, validate=SCHOOL_ACTION)


class SchoolCaller(_Strict):
    """The credentials a school-system call carries (the SCIM calls), read
    on their own before the rest of the payload: a wrong token is told so
    before anything else is judged."""

    school_token = fields.String(required=True, validate=SCHOOL_TOKEN)
    action = fields.String(required=True, validate=SCHOOL_ACTION)


# -- SCIM ----------------------------------------------------------------------
SCIM_KINDS = ("User", "Group")
# What may follow the server's base URL in meta.location (the gateway's own
# scheme://host/scim/v2, taken from the request).
BASE_URL = validate.Regexp(r"^https?://[^\s]{1,200}$")


class _ScimRequest(SchoolCaller):
    kind = fields.String(required=True, validate=validate.OneOf(SCIM_KINDS))
    base_url = fields.String(required=True, validate=BASE_URL)


class _Selection(Schema):
    attributes = fields.List(
        fields.String(validate=validate.Length(1, 200)),
        load_default=list,
        validate=validate.Length(max=50),
    )
    excluded_attributes = fields.List(
        fields.String(validate=validate.Length(1, 200)),
        load_default=list,
        validate=validate.Length(max=50),
    )


class ScimDiscoveryRequest(_Strict):
    base_url = fields.String(required=True, validate=BASE_URL)


class ScimWriteRequest(_ScimRequest, _Selection):
    document = fields.Raw(required=True)
    # None: unconditional; "*": any version; else the ETag the client holds.
    if_match = fields.String(load_default=None, validate=validate.Length(1, 64))


class ScimResourceRequest(_ScimRequest, _Selection):
    id = fields.String(required=True, validate=validate.Length(1, 64))
    if_match = fields.String(load_default=None, validate=validate.Length(1, 64))


class ScimUpdateRequest(ScimResourceRequest):
    document = fields.Raw(required=True)


class ScimListRequest(_ScimRequest, _Selection):
    filter = fields.String(load_default=None, validate=validate.Length(1, 2000))
    start_index = fields.Integer(load_default=1)
    count = fields.Integer(load_default=None)
    sort_by = fields.String(load_default=None, validate=validate.Length(1, 200))
    sort_order = fields.String(
        load_default="ascending", validate=validate.OneOf(("ascending", "descending"))
    )


class ScimSearchRequest(SchoolCaller, _Selection):
    """A search across resource types (``POST /scim/v2/.search``)."""

    base_url = fields.String(required=True, validate=BASE_URL)
    filter = fields.String(load_default=None, validate=validate.Length(1, 2000))
    start_index = fields.Integer(load_default=1)
    count = fields.Integer(load_default=None)
    sort_by = fields.String(load_default=None, validate=validate.Length(1, 200))
    sort_order = fields.String(
        load_default="ascending", validate=validate.OneOf(("ascending", "descending"))
    )


# -- registry verification --------------------------------------------------------
def _text(maximum):
    return validate.Length(1, maximum)


class SubmitVerificationRequest(_Strict):
    account_id = fields.UUID(required=True)
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
    student_number = fields.String(required=True, validate=_text(64))
    name = fields.String(required=True, validate=_text(64))
    grade = fields.String(load_default=None, allow_none=True, validate=_text(32))
    class_name = fields.String(load_default=None, allow_none=True, validate=_text(64))
    id_number = fields.String(load_default=None, allow_none=True, validate=_text(40))

    @pre_load
    def upper_code(self, data, **kwargs):
        if isinstance(data, dict) and isinstance(data.get("school_code"), str):
            data = {**data, "school_code": data["school_code"].strip().upper()}
        if isinstance(data, dict) and isinstance(data.get("student_number"), str):
            data = {**data, "student_number": data["student_number"].strip()}
        return data


class AccountRequest(_Strict):
    account_id = fields.UUID(required=True)


class CorrectionRequest(_Strict):
    account_id = fields.UUID(required=True)
    note = fields.String(required=True, validate=validate.Length(2, 500))


class VerificationState(Schema):
    status = fields.String(required=True)
    code = fields.String(allow_none=True)
    # Where a failure leads: duplicate_id (the record is tied to another
    # account: the duplicate-ID path), school_link (only the school can link).
    next_step = fields.String(allow_none=True)
    mismatches = fields.List(fields.String(), required=True)
    school_code = fields.String(required=True)
    student_number = fields.String(required=True)
    verified_since = fields.AwareDateTime(allow_none=True)
    correction_note = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime(required=True)


class AdminStudentRequest(_Strict):
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
    account_id = fields.UUID(required=True)
    actor = fields.String(required=True, validate=ACTOR)


class LinkRequest(AdminStudentRequest):
    student_number = fields.String(required=True, validate=_text(64))
    reason = fields.String(required=True, validate=validate.Length(2, 500))


class UnmatchedRequest(_Strict):
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
    actor = fields.String(required=True, validate=ACTOR)
    status = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(("pending", "failed")),
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class UnmatchedItem(Schema):
    account_id = fields.String(required=True)
    student_number = fields.String(required=True)
    status = fields.String(required=True)
    code = fields.String(allow_none=True)
    mismatches = fields.List(fields.String(), required=True)
    correction_note = fields.String(allow_none=True)
    linked_by = fields.String(allow_none=True)
    submitted_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class ClassmatesRequest(_Strict):
    account_id = fields.UUID(required=True)
    other_account_id = fields.UUID(required=True)


# -- OneRoster imports -------------------------------------------------------------
class StartImportRequest(_Strict):
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
    # The zip, base64 (RPC bodies are JSON); the gateway caps its size.
    package_b64 = fields.String(required=True, validate=validate.Length(1, 80_000_000))


class ImportStatusRequest(_Strict):
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
    import_id = fields.UUID(required=True)
    error_limit = fields.Integer(load_default=1000, validate=validate.Range(0, 10_000))


class ImportRowError(Schema):
    file = fields.String(required=True)
    line = fields.Integer(required=True)
    field = fields.String(allow_none=True)
    reason = fields.String(required=True)
    kept = fields.Boolean(required=True)


class ImportState(Schema):
    import_id = fields.String(required=True)
    status = fields.String(required=True)
    version = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)
    error_detail = fields.String(allow_none=True)
    progress = fields.Dict(required=True)
    warnings = fields.List(fields.String(), required=True)
    errors = fields.List(fields.Nested(ImportRowError), required=True)
    errors_total = fields.Integer(required=True)
    created_at = fields.AwareDateTime(required=True)
    started_at = fields.AwareDateTime(allow_none=True)
    finished_at = fields.AwareDateTime(allow_none=True)


# -- pushed enrolments and change windows ------------------------------------------------
class EnrollmentItem(Schema):
    # Unknown keys refuse the item (RAISE): a typo must not pass silently.
    student_number = fields.String(required=True, validate=_text(64))
    course_id = fields.String(required=True, validate=_text(64))
    term = fields.String(required=True, validate=_text(32))
    kind = fields.String(
        required=True, validate=validate.OneOf(("school_arranged", "free_elective"))
    )
    exam_ended = StrictBoolean(required=True)
    exam_ends_at = UtcDateTime(load_default=None, allow_none=True)
    grades_published = StrictBoolean(required=True)
    makeup_pending = StrictBoolean(load_default=False)
    dropped = StrictBoolean(load_default=False)
    as_of = UtcDateTime(load_default=None, allow_none=True)


class WindowItem(Schema):
    window_id = fields.String(load_default=None, validate=_text(64))
    fields_ = fields.List(
        fields.String(validate=validate.OneOf(AUTH_INFO_FIELDS)),
        required=True,
        data_key="fields",
        validate=validate.Length(1, len(AUTH_INFO_FIELDS)),
    )
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True)
    cancelled = StrictBoolean(load_default=False)
    as_of = UtcDateTime(load_default=None, allow_none=True)

    @validates_schema
    def ends_after_start(self, data, **kwargs):
        if data["ends_at"] <= data["starts_at"]:
            raise ValidationError("ends_at must be after starts_at", "ends_at")


class PushRequest(_Strict):
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
    items = fields.List(
        fields.Raw(), required=True, validate=validate.Length(0, 10_000)
    )


class CurrentTermRequest(_Strict):
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
    term = fields.String(required=True, allow_none=True, validate=_text(32))
