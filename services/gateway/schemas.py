"""What every surface's public HTTP shapes share: field rules (phones,
emails, codes, passwords), the error documents, and the few shapes more than
one surface answers with. Each surface's own shapes are in
``<surface>_schemas.py`` beside it (separate from the internal RPC shapes)."""

from marshmallow import (
    INCLUDE,
    Schema,
    fields,
    validate,
)

from services.common.rules.contacts import EMAIL_PATTERN, MOBILE_PATTERN
from services.common.rules.roles import SCHOOL_CODE_PATTERN

__all__ = [
    "ProblemSchema",
    "ScimErrorSchema",
    "RegistryStateSchema",
    "ReviewSchema",
    "ServiceLevelSchema",
]


# The formats the services validate with, published and enforced here so a
# request the contract allows is never refused as malformed further in.
# Their error messages are the stable codes clients already know
# (``load_body`` answers with the code when it is the only complaint).
PHONE = validate.Regexp(MOBILE_PATTERN, error="phone_invalid")
EMAIL = [
    validate.Length(max=254, error="email_invalid"),
    validate.Regexp(EMAIL_PATTERN, error="email_invalid"),
]
NEW_PASSWORD = validate.Length(8, 64)
# At least one character that is neither white space nor NUL (identity
# strips a login name before reading it).
NOT_BLANK = validate.Regexp(r"^[^\u0000]*[^\s\u0000][^\u0000]*$", error="empty")


def _phone(example="13812345678", **kwargs):
    return fields.String(validate=PHONE, metadata={"example": example}, **kwargs)


class ProblemSchema(Schema):
    """RFC 9457 problem details, with a stable ``code``. Members beyond the
    listed ones may appear (RFC 9457 §3.2: extension members)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"example": "daily_limit_reached"})
    detail = fields.String(required=True)
    message_zh = fields.String()
    message_en = fields.String()
    errors = fields.Dict(metadata={"description": "invalid_request: field -> messages"})
    retry_after = fields.Integer(metadata={"description": "seconds; also Retry-After"})
    resets_at = fields.String(metadata={"description": "when a daily limit resets"})
    service = fields.String(metadata={"description": "the service that failed"})


class ScimErrorSchema(Schema):
    """RFC 7644 §3.12 error; our stable code leads ``detail`` and is the
    ``X-Error-Code`` header."""

    class Meta:
        unknown = INCLUDE

    schemas = fields.List(fields.String(), required=True)
    status = fields.String(required=True, metadata={"example": "400"})
    scimType = fields.String(metadata={"example": "invalidFilter"})
    detail = fields.String(
        required=True,
        metadata={"description": "[stable_code] 中文 / English (specifics)"},
    )


CODE_FIELD = {
    "validate": validate.Regexp(r"^\d{6}$"),
    "metadata": {"example": "123456"},
}


def _code(required=True):
    if required:
        return fields.String(required=True, **CODE_FIELD)
    return fields.String(load_default=None, **CODE_FIELD)


def _password():
    """A new password (registration, reset): the length rule of identity."""
    return fields.String(required=True, validate=NEW_PASSWORD, load_only=True)


def _current_password():
    """The password the account has now, to confirm a change."""
    return fields.String(
        required=True, validate=validate.Length(1, 256), load_only=True
    )


# -- schools and staff roles ---------------------------------------------------
SCHOOL_CODE_FIELD = validate.Regexp(SCHOOL_CODE_PATTERN, error="school_code_invalid")


class RegistryStateSchema(Schema):
    status = fields.String(
        required=True, validate=validate.OneOf(("pending", "passed", "failed"))
    )
    code = fields.String(
        allow_none=True,
        metadata={
            "description": "why: school_not_onboarded, school_not_synced, "
            "not_in_registry, record_inactive, record_claimed, name_mismatch, "
            "class_name_mismatch, grade_mismatch, id_number_mismatch, "
            "birth_date_mismatch, id_document_unverifiable, resubmission_needed. "
            "The record is compared with the account's own real name and ID "
            "document, never with the name typed in the form"
        },
    )
    next_step = fields.String(
        allow_none=True,
        metadata={
            "description": "after a failure: duplicate_id (the record is tied to "
            "another account — resolve it on the duplicate-ID path, "
            "/api/v1/me/duplicate-id), school_link (only the school can link this "
            "account by hand)"
        },
    )
    mismatches = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "the fields that differ; never the registry's values"},
    )
    school_code = fields.String(required=True)
    student_number = fields.String(required=True)
    verified_since = fields.AwareDateTime(allow_none=True)
    correction_note = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime(required=True)


# -- recovery: forgot phone ------------------------------------------------------------
SHARE_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{20,200}$"
RECOVERY_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{20,128}$"


RECOVERY_STATUSES = (
    "matched",
    "awaiting_vouches",
    "completed",
    "cancelled",
    "expired",
    "failed",
    "reverted",
)


# -- recovery: duplicate ID, reviews, inbox -------------------------------------------------
class ServiceLevelSchema(Schema):
    promise_zh = fields.String(required=True)
    promise_en = fields.String(required=True)
    answer_by = fields.Date(required=True)


class ReviewSchema(Schema):
    review_id = fields.UUID(required=True)
    kind = fields.String(
        required=True,
        validate=validate.OneOf(
            ("duplicate_photo", "recovery_dispute", "duplicate_dispute")
        ),
    )
    status = fields.String(
        required=True, validate=validate.OneOf(("open", "approved", "rejected"))
    )
    reason = fields.String(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    decided_at = fields.AwareDateTime(allow_none=True)
    service_level = fields.Nested(ServiceLevelSchema, required=True)


# Where a school's SCIM student numbers and ID numbers come from (ops and
# the school's admin set it; registry_sync/scim.py IDENTIFIER_SOURCES).
STUDENT_NUMBER_SOURCES = ("extension", "employeeNumber", "userName", "externalId")
ID_NUMBER_SOURCES = ("extension", "employeeNumber", "externalId")


class ScimSourcesSchema(Schema):
    """An identifier it does not name keeps its default; ``{}``: all."""

    student_number = fields.List(
        fields.String(validate=validate.OneOf(STUDENT_NUMBER_SOURCES)),
        validate=validate.Length(1, 4),
        metadata={
            "description": "in order, the first present wins; default "
            '["extension", "employeeNumber", "userName"]',
            "uniqueItems": True,
        },
    )
    id_number = fields.List(
        fields.String(validate=validate.OneOf(ID_NUMBER_SOURCES)),
        validate=validate.Length(1, 3),
        metadata={
            "description": 'in order; default ["extension"]',
            "uniqueItems": True,
        },
    )


class ScimSourcesSetSchema(Schema):
    """``{"sources": {}}``: back to the defaults."""

    sources = fields.Nested(ScimSourcesSchema, required=True)


class ScimSourcesAnswerSchema(Schema):
    code = fields.String(required=True)
    sources = fields.Nested(ScimSourcesSchema, required=True)
    defaults = fields.Boolean(required=True)
