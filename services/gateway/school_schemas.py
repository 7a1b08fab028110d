"""School systems' public HTTP shapes: rosters, enrolments, change windows (``school.py``) and SCIM (``scim.py``)."""

from marshmallow import (
    INCLUDE,
    Schema,
    fields,
    validate,
)

from services.common.contract.fields import (
    StrictBoolean,
    UtcDateTime,
)
from services.common.contract.vocabulary import (
    AUTH_INFO_FIELDS,
)


class ScimResourceSchema(Schema):
    """A SCIM resource (User: core subset + the student extension, Group);
    the full attribute lists are published at ``/scim/v2/Schemas``."""

    class Meta:
        unknown = INCLUDE

    schemas = fields.List(fields.String(), required=True)
    id = fields.String(metadata={"description": "server-assigned"})
    meta = fields.Dict()


class ScimPatchSchema(Schema):
    class Meta:
        unknown = INCLUDE

    schemas = fields.List(
        fields.String(),
        required=True,
        metadata={"example": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]},
    )
    Operations = fields.List(fields.Dict(), required=True)


class ScimListSchema(Schema):
    class Meta:
        unknown = INCLUDE

    schemas = fields.List(fields.String(), required=True)
    totalResults = fields.Integer(required=True)
    startIndex = fields.Integer()
    itemsPerPage = fields.Integer()
    Resources = fields.List(fields.Dict())


class SchoolSelfSchema(Schema):
    school_code = fields.String(required=True)
    name = fields.String(required=True)


# -- OneRoster roster files ------------------------------------------------------------
class ImportQueuedSchema(Schema):
    import_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "queued"})


class ImportRowErrorSchema(Schema):
    file = fields.String(required=True, metadata={"example": "users.csv"})
    line = fields.Integer(required=True)
    field = fields.String(allow_none=True, metadata={"example": "dateLastModified"})
    reason = fields.String(required=True)
    kept = fields.Boolean(
        required=True,
        metadata={"description": "true: the row was kept and the value flagged"},
    )


class ImportStateSchema(Schema):
    import_id = fields.String(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(("queued", "running", "succeeded", "failed")),
    )
    version = fields.String(allow_none=True, metadata={"example": "1.2"})
    error_code = fields.String(
        allow_none=True,
        metadata={"description": "why the whole package was refused (nothing changed)"},
    )
    error_detail = fields.String(allow_none=True)
    progress = fields.Dict(
        required=True,
        metadata={"description": "per file: read, kept, refused, skipped, deactivated"},
    )
    warnings = fields.List(fields.String(), required=True)
    errors = fields.List(fields.Nested(ImportRowErrorSchema), required=True)
    errors_total = fields.Integer(required=True)
    created_at = fields.AwareDateTime(required=True)
    started_at = fields.AwareDateTime(allow_none=True)
    finished_at = fields.AwareDateTime(allow_none=True)


# -- pushed enrolments, change windows and the current term ------------------------
class EnrollmentPushItemSchema(Schema):
    student_number = fields.String(required=True, validate=validate.Length(1, 64))
    course_id = fields.String(required=True, validate=validate.Length(1, 64))
    term = fields.String(
        required=True, validate=validate.Length(1, 32), metadata={"example": "2026-1"}
    )
    kind = fields.String(
        required=True, validate=validate.OneOf(("school_arranged", "free_elective"))
    )
    exam_ended = StrictBoolean(required=True)
    exam_ends_at = UtcDateTime(load_default=None, allow_none=True)
    grades_published = StrictBoolean(required=True)
    makeup_pending = StrictBoolean(load_default=False)
    dropped = StrictBoolean(load_default=False)
    as_of = UtcDateTime(
        load_default=None,
        allow_none=True,
        metadata={"description": "when the school's system knew this; newest wins"},
    )


class ChangeWindowItemSchema(Schema):
    window_id = fields.String(load_default=None, validate=validate.Length(1, 64))
    fields_ = fields.List(
        fields.String(validate=validate.OneOf(AUTH_INFO_FIELDS)),
        required=True,
        data_key="fields",
        validate=validate.Length(1, len(AUTH_INFO_FIELDS)),
    )
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True, metadata={"description": "after starts_at"})
    cancelled = StrictBoolean(load_default=False)
    as_of = UtcDateTime(load_default=None, allow_none=True)


class PushResultSchema(Schema):
    received = fields.Integer(required=True)
    changed = fields.Integer(
        required=True, metadata={"description": "items newer than what was kept"}
    )
    published = fields.Integer(
        metadata={"description": "current-term enrolments announced to identity"}
    )
    window_ids = fields.List(fields.String())
    refused = fields.List(
        fields.Dict(),
        required=True,
        metadata={"description": "[{index, field, reason}] of items not taken"},
    )


class CurrentTermSchema(Schema):
    term = fields.String(
        required=True,
        allow_none=True,
        validate=validate.Length(1, 32),
        metadata={"description": "null: follow academicSessions again"},
    )


class CurrentTermSetSchema(Schema):
    school_code = fields.String(required=True)
    current_term = fields.String(allow_none=True)
