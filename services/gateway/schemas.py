"""The gateway's public HTTP shapes (separate from the internal RPC shapes)."""

from marshmallow import (
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from services.common.contract.events import OwnedCourse
from services.common.contract.fields import (
    StrictBoolean,
    UtcDateTime,
    require_one_way_in,
)
from services.common.contract.vocabulary import (
    AUTH_INFO_FIELDS,
    CODE_CHANNELS,
    CODE_PURPOSES,
    ID_TYPES,
    LINK_PROVIDERS,
    MAX_BALANCE_FEN,
)
from services.common.rules.contacts import EMAIL_PATTERN, MOBILE_PATTERN
from services.common.rules.roles import SCHOOL_CODE_PATTERN, STAFF_ROLES

__all__ = [
    "ProblemSchema",
    "ScimErrorSchema",
    "ScimResourceSchema",
    "ScimPatchSchema",
    "ScimListSchema",
    "HealthSchema",
    "ServiceHealthSchema",
    "CodeRequestSchema",
    "CodeIssuedSchema",
    "CaptchaSchema",
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
PHONE_OR_EMAIL = validate.Regexp(
    f"(?:{MOBILE_PATTERN})|(?:{EMAIL_PATTERN})", error="destination_invalid"
)
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


class ServiceHealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "up"})
    database = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    latency_ms = fields.Float(allow_none=True)


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    services = fields.Dict(
        keys=fields.String(), values=fields.Nested(ServiceHealthSchema), required=True
    )


class CodeRequestSchema(Schema):
    """Ask for a verification code."""

    channel = fields.String(
        required=True,
        validate=validate.OneOf(CODE_CHANNELS),
        metadata={"example": "sms"},
    )
    destination = fields.String(
        required=True,
        validate=[validate.Length(1, 254), PHONE_OR_EMAIL],
        metadata={
            "example": "13812345678",
            "description": "a mainland mobile for sms, an address for email",
        },
    )
    purpose = fields.String(
        required=True,
        validate=validate.OneOf(CODE_PURPOSES),
        metadata={"example": "register"},
    )
    captcha_id = fields.UUID(load_default=None)
    captcha_answer = fields.String(load_default=None, validate=validate.Length(max=16))


class CodeIssuedSchema(Schema):
    expires_at = fields.AwareDateTime(required=True)
    resend_after = fields.Integer(required=True, metadata={"example": 60})
    remaining_today = fields.Integer(required=True, metadata={"example": 4})
    destination_masked = fields.String(metadata={"example": "138****5678"})


class CaptchaSchema(Schema):
    captcha_id = fields.UUID(required=True)
    image_png_base64 = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)


class AccountRegistrationSchema(Schema):
    """Register with phone, SMS code, password, real name and ID document."""

    phone = _phone(required=True)
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{6}$"),
        metadata={"example": "123456"},
    )
    password = fields.String(required=True, validate=NEW_PASSWORD, load_only=True)
    name = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"example": "张三"}
    )
    id_type = fields.String(
        required=True,
        validate=validate.OneOf(ID_TYPES),
        metadata={"example": "resident_id"},
    )
    id_number = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"example": "11010519491231002X"},
    )
    email = fields.String(load_default=None, validate=EMAIL)
    register_anyway = fields.Boolean(load_default=False)


class AccountCreatedSchema(Schema):
    account_id = fields.UUID(required=True)
    passport_id = fields.String(required=True, metadata={"example": "P7KQ2M9XHT4CA"})
    status = fields.String(required=True, metadata={"example": "active"})


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


class StudentNumberRegistrationSchema(Schema):
    """K-12 registration: the guardian's phone receives a `guardian_check` code."""

    school_code = fields.String(
        required=True, validate=validate.Length(1, 32), metadata={"example": "BJ101"}
    )
    student_number = fields.String(
        required=True, validate=validate.Length(1, 32), metadata={"example": "20240117"}
    )
    name = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"example": "李小花"}
    )
    guardian_phone = _phone("13912345678", required=True)
    code = _code()
    password = _password()


class LoginSchema(Schema):
    """`login` (phone, email, ID number or passport ID) + `password`, or a
    linked provider's `provider` + `assertion`; `code` after a 403
    `device_verification_required`."""

    # Published as the same rule the loader enforces (build_spec merges it).
    openapi_extra = {
        "oneOf": [
            {"required": ["login", "password"]},
            {"required": ["provider", "assertion"]},
        ]
    }

    login = fields.String(
        load_default=None,
        allow_none=False,
        validate=[validate.Length(1, 254), NOT_BLANK],
        metadata={"example": "13812345678"},
    )
    password = fields.String(
        load_default=None,
        allow_none=False,
        validate=validate.Length(1, 256),
        load_only=True,
    )
    provider = fields.String(
        load_default=None, allow_none=False, validate=validate.OneOf(LINK_PROVIDERS)
    )
    assertion = fields.String(
        load_default=None, allow_none=False, validate=validate.Length(1, 8192)
    )
    code = fields.String(load_default=None, allow_none=False, **CODE_FIELD)
    web_session = StrictBoolean(
        load_default=False,
        metadata={
            "description": "a page login: the session goes into an HttpOnly "
            "cookie (sid) with its CSRF token (cookie csrf, echoed as "
            "X-CSRF-Token on every change); needs Content-Type: application/json"
        },
    )

    @validates_schema
    def one_way_in(self, data, **kwargs):
        require_one_way_in(data)


class SessionSchema(Schema):
    token = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "null for a web_session: it is in an HttpOnly cookie"},
    )
    web_session = fields.Boolean(
        metadata={"description": "true when the session went into cookies"}
    )
    session_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)
    expires_at = fields.AwareDateTime(required=True)


class EndedSchema(Schema):
    ended = fields.Integer(required=True)


class GuardianInfoSchema(Schema):
    required = fields.Boolean(required=True)
    verified = fields.Boolean(required=True)
    phone_masked = fields.String(allow_none=True)


class ProfileSchema(Schema):
    account_id = fields.UUID(required=True)
    passport_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "active"})
    roles = fields.List(fields.String(), required=True)
    name = fields.String(allow_none=True)
    phone_masked = fields.String(allow_none=True, metadata={"example": "138****5678"})
    email_masked = fields.String(allow_none=True)
    id_type = fields.String(allow_none=True)
    id_number_masked = fields.String(
        allow_none=True, metadata={"example": "110***********002X"}
    )
    school_code = fields.String(allow_none=True)
    student_number = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    enrollment_year = fields.Integer(allow_none=True)
    registry_status = fields.String(required=True, metadata={"example": "pending"})
    guardian = fields.Nested(GuardianInfoSchema, required=True)
    security_questions_set = fields.Boolean(required=True)
    linked_providers = fields.List(fields.String(), required=True)
    created_at = fields.AwareDateTime(required=True)


class UsernameRecoverySchema(Schema):
    id_number = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"example": "11010519491231002X"},
    )
    name = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"example": "张三"}
    )
    captcha_id = fields.UUID(required=True)
    captcha_answer = fields.String(required=True, validate=validate.Length(1, 16))


class LoginNameSchema(Schema):
    kind = fields.String(required=True, metadata={"example": "phone"})
    value = fields.String(required=True, metadata={"example": "138****5678"})


class LoginNamesSchema(Schema):
    login_names = fields.List(fields.Nested(LoginNameSchema), required=True)


class PhoneChangeSchema(Schema):
    password = _current_password()
    new_phone = _phone("13912345678", required=True)
    code = _code()


class PhoneChangedSchema(Schema):
    phone_masked = fields.String(required=True)


class EmailChangeSchema(Schema):
    password = _current_password()
    new_email = fields.String(
        required=True, validate=EMAIL, metadata={"example": "zhang@school.edu.cn"}
    )
    code = _code()


class EmailChangedSchema(Schema):
    email_masked = fields.String(required=True)


class SecurityQuestionSchema(Schema):
    question = fields.String(required=True, validate=validate.Length(2, 100))
    answer = fields.String(
        required=True, validate=validate.Length(1, 100), load_only=True
    )


class SecurityQuestionsSchema(Schema):
    password = _current_password()
    questions = fields.List(
        fields.Nested(SecurityQuestionSchema),
        required=True,
        validate=validate.Length(3, 3),
    )


class QuestionsSetSchema(Schema):
    questions = fields.List(fields.String(), required=True)


class GuardianSchema(Schema):
    guardian_phone = _phone("13912345678", required=True)
    code = _code()


class GuardianSetSchema(Schema):
    guardian_phone_masked = fields.String(required=True)


class FieldPermissionSchema(Schema):
    changeable = fields.Boolean(required=True)
    reason = fields.String(
        allow_none=True,
        metadata={"example": "school_arranged_course"},
    )
    reasons = fields.List(fields.String())
    unlocks_at = fields.AwareDateTime(allow_none=True)


class PermissionsSchema(Schema):
    """Per field (`school_code`, `student_number`, `name`, `department`,
    `enrollment_year`): may it change now, why not, when it unlocks."""

    fields_ = fields.Dict(
        keys=fields.String(validate=validate.OneOf(AUTH_INFO_FIELDS)),
        values=fields.Nested(FieldPermissionSchema),
        required=True,
        data_key="fields",
    )


class AuthInfoChangeSchema(Schema):
    code = _code()
    school_code = fields.String(load_default=None, validate=validate.Length(1, 32))
    student_number = fields.String(load_default=None, validate=validate.Length(1, 32))
    name = fields.String(load_default=None, validate=validate.Length(1, 64))
    department = fields.String(load_default=None, validate=validate.Length(1, 64))
    enrollment_year = fields.Integer(load_default=None, strict=True)


class AuthInfoChangedSchema(Schema):
    changed = fields.List(fields.String(), required=True)
    registry_status = fields.String(required=True)


class UnmetSchema(Schema):
    condition = fields.String(required=True, metadata={"example": "wallet_balance"})
    detail = fields.Dict(required=True)


class DeactivationStatusSchema(Schema):
    eligible = fields.Boolean(required=True)
    unmet = fields.List(fields.Nested(UnmetSchema), required=True)


class DeactivateSchema(Schema):
    code = _code()


class DeactivatedSchema(Schema):
    deactivated = fields.Boolean(required=True)


class LinkSchema(Schema):
    provider = fields.String(required=True, validate=validate.OneOf(LINK_PROVIDERS))
    assertion = fields.String(required=True, validate=validate.Length(1, 8192))


class LinkedSchema(Schema):
    provider = fields.String(required=True)
    linked = fields.Boolean(required=True)


class AccountFactsSchema(Schema):
    """What the wallet and course systems know of an account, as of a time;
    an older `as_of` than the one stored is ignored."""

    balance_fen = fields.Integer(
        load_default=None,
        strict=True,
        validate=validate.Range(min=0, max=MAX_BALANCE_FEN),
    )
    owned = fields.List(fields.Nested(OwnedCourse), load_default=None)
    as_of = UtcDateTime(required=True)


class AccountFactsStoredSchema(Schema):
    account_id = fields.UUID(required=True)


# -- schools and staff roles ---------------------------------------------------
SCHOOL_CODE_FIELD = validate.Regexp(SCHOOL_CODE_PATTERN, error="school_code_invalid")


class SchoolOnboardSchema(Schema):
    code = fields.String(
        required=True, validate=SCHOOL_CODE_FIELD, metadata={"example": "BJ101"}
    )
    name = fields.String(
        required=True,
        validate=validate.Length(1, 128),
        metadata={"example": "北京市第一〇一中学"},
    )
    region = fields.String(load_default=None, validate=validate.Length(1, 64))


class SchoolTokenSchema(Schema):
    code = fields.String(required=True)
    api_token = fields.String(
        required=True, metadata={"description": "shown once; keep it secret"}
    )


class SchoolInfoSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    region = fields.String(allow_none=True)
    token_issued_at = fields.AwareDateTime(required=True)
    created_at = fields.AwareDateTime(required=True)


class SchoolSelfSchema(Schema):
    school_code = fields.String(required=True)
    name = fields.String(required=True)


class RoleGrantSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    school_code = fields.String(load_default=None, validate=SCHOOL_CODE_FIELD)


class RolesSchema(Schema):
    roles = fields.List(
        fields.Nested(RoleGrantSchema), required=True, validate=validate.Length(max=20)
    )


class RolesSetSchema(Schema):
    account_id = fields.UUID(required=True)
    roles = fields.List(
        fields.String(), required=True, metadata={"example": ["student", "ops"]}
    )


# -- registry verification and school admin tools ----------------------------------
class RegistryVerificationSchema(Schema):
    school_code = fields.String(
        required=True, validate=SCHOOL_CODE_FIELD, metadata={"example": "BJ101"}
    )
    student_number = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"example": "2024001"}
    )
    name = fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"example": "张三"}
    )
    grade = fields.String(load_default=None, validate=validate.Length(1, 32))
    class_name = fields.String(load_default=None, validate=validate.Length(1, 64))
    id_number = fields.String(
        load_default=None,
        validate=validate.Length(1, 40),
        metadata={
            "description": "optional; compared as a keyed hash, never stored plain"
        },
    )


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


class CorrectionRequestSchema(Schema):
    note = fields.String(
        required=True,
        validate=validate.Length(2, 500),
        metadata={"example": "我的名字是“喆”，学籍里录成了“哲”"},
    )


class UnmatchedItemSchema(Schema):
    account_id = fields.String(required=True)
    student_number = fields.String(required=True)
    status = fields.String(required=True)
    code = fields.String(allow_none=True)
    mismatches = fields.List(fields.String(), required=True)
    correction_note = fields.String(allow_none=True)
    linked_by = fields.String(allow_none=True)
    submitted_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class UnmatchedPageSchema(Schema):
    items = fields.List(fields.Nested(UnmatchedItemSchema), required=True)
    total = fields.Integer(required=True)
    next_offset = fields.Integer(allow_none=True)


class ManualLinkSchema(Schema):
    account_id = fields.UUID(required=True)
    student_number = fields.String(required=True, validate=validate.Length(1, 64))
    reason = fields.String(
        required=True,
        validate=validate.Length(2, 500),
        metadata={"example": "学生提供了学籍卡复印件，姓名录入有误"},
    )


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


# -- recovery: forgot phone ------------------------------------------------------------
SHARE_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{20,200}$"
RECOVERY_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{20,128}$"


class PhoneRecoveryStartSchema(Schema):
    school_code = fields.String(
        required=True,
        validate=validate.Regexp(SCHOOL_CODE_PATTERN),
        metadata={"example": "BJ101"},
    )
    student_number = fields.String(
        required=True,
        validate=[validate.Length(1, 64), NOT_BLANK],
        metadata={"example": "2024001"},
    )
    name = fields.String(
        required=True,
        validate=[validate.Length(1, 64), NOT_BLANK],
        metadata={"example": "张三"},
    )


class PhoneRecoveryStartedSchema(Schema):
    recovery_id = fields.UUID(required=True)
    recovery_token = fields.String(
        required=True,
        metadata={
            "description": "the flow's secret: send it as X-Recovery-Token on "
            "the next steps; shown once"
        },
    )
    old_phone_hint = fields.String(required=True, metadata={"example": "138****78"})
    expires_at = fields.AwareDateTime(required=True)


class NewPhoneSchema(Schema):
    old_phone = fields.String(
        required=True,
        validate=[validate.Length(1, 32), NOT_BLANK],
        metadata={"description": "the old bound phone, typed in full"},
    )
    new_phone = _phone(required=True)
    code = fields.String(
        required=True,
        validate=validate.Regexp(r"^\d{6}$"),
        metadata={"example": "123456"},
    )
    new_password = fields.String(required=True, validate=NEW_PASSWORD, load_only=True)


class ShareLinkSchema(Schema):
    share_url = fields.String(required=True)
    share_token = fields.String(required=True)
    vouches = fields.Integer(required=True)
    vouches_needed = fields.Integer(required=True)
    expires_at = fields.AwareDateTime(required=True)
    new_phone_masked = fields.String(required=True)


RECOVERY_STATUSES = (
    "matched",
    "awaiting_vouches",
    "completed",
    "cancelled",
    "expired",
    "failed",
    "reverted",
)


class PhoneRecoveryProgressSchema(Schema):
    recovery_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(RECOVERY_STATUSES))
    vouches = fields.Integer(required=True)
    vouches_needed = fields.Integer(required=True)
    expires_at = fields.AwareDateTime(required=True)
    old_phone_hint = fields.String(required=True)
    completed_at = fields.AwareDateTime(allow_none=True)


class VouchContextSchema(PhoneRecoveryProgressSchema):
    requester_name = fields.String(required=True)
    requester_class = fields.String(allow_none=True)
    new_phone_masked = fields.String(required=True)
    is_requester = fields.Boolean(required=True)
    already_vouched = fields.Boolean(required=True)
    warning_zh = fields.String(required=True)
    warning_en = fields.String(required=True)


class VouchResultSchema(Schema):
    recovery_id = fields.UUID(required=True)
    vouches = fields.Integer(required=True)
    vouches_needed = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(RECOVERY_STATUSES))


class NotMeResultSchema(Schema):
    recovery_id = fields.UUID(required=True)
    status = fields.String(required=True)


class IdNotMeResultSchema(Schema):
    resolution_id = fields.UUID(required=True)
    status = fields.String(
        required=True,
        metadata={"description": "disputed: the move stopped, a reviewer decides"},
    )


# -- recovery: password reset ---------------------------------------------------------
class ResetMethodSchema(Schema):
    method = fields.String(
        required=True, validate=validate.OneOf(("sms", "email", "questions"))
    )
    target = fields.String(metadata={"description": "masked phone or address"})
    questions = fields.List(fields.String())


class ResetMethodsSchema(Schema):
    methods = fields.List(fields.Nested(ResetMethodSchema), required=True)
    alternatives = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "where to go with no method left"},
    )


class ResetCodeRequestSchema(Schema):
    login = fields.String(required=True, validate=[validate.Length(1, 254), NOT_BLANK])
    method = fields.String(required=True, validate=validate.OneOf(("sms", "email")))


class ResetCodeSentSchema(Schema):
    method = fields.String(required=True)
    target = fields.String(required=True)
    resend_after = fields.Integer(required=True)


class PasswordResetSchema(Schema):
    """`code` for `sms` / `email`, three `answers` for `questions`."""

    openapi_extra = {
        "oneOf": [
            {
                "required": ["code"],
                "properties": {"method": {"enum": ["sms", "email"]}},
            },
            {
                "required": ["answers"],
                "properties": {"method": {"enum": ["questions"]}},
            },
        ]
    }

    login = fields.String(required=True, validate=[validate.Length(1, 254), NOT_BLANK])
    method = fields.String(
        required=True, validate=validate.OneOf(("sms", "email", "questions"))
    )
    code = fields.String(validate=validate.Regexp(r"^\d{6}$"))
    answers = fields.List(
        fields.String(validate=[validate.Length(1, 128), NOT_BLANK]),
        validate=validate.Length(3, 3),
    )
    new_password = fields.String(required=True, validate=NEW_PASSWORD, load_only=True)

    @validates_schema
    def _proof_for_method(self, data, **kwargs):
        # Exactly the published oneOf: the proof the method needs must be
        # there; anything else given beside it is ignored.
        if data.get("method") == "questions":
            if "answers" not in data:
                raise ValidationError("three answers are required", "answers")
        elif "code" not in data:
            raise ValidationError("a code is required", "code")


class PasswordResetDoneSchema(Schema):
    reset = fields.Boolean(required=True)
    logged_in = fields.Boolean(required=True)


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


class AdminReviewSchema(ReviewSchema):
    account_id = fields.UUID(required=True)
    has_photo = fields.Boolean(required=True)


class ReviewPageSchema(Schema):
    items = fields.List(fields.Nested(AdminReviewSchema), required=True)
    total = fields.Integer(required=True)
    next_offset = fields.Integer(allow_none=True)


class ReviewDecisionSchema(Schema):
    approve = StrictBoolean(required=True)
    reason = fields.String(
        required=True,
        validate=[validate.Length(2, 500), NOT_BLANK],
        metadata={"example": "照片清晰，人证一致"},
    )


class AssistanceRequestSchema(Schema):
    classmate_name = fields.String(
        required=True, validate=[validate.Length(1, 64), NOT_BLANK]
    )
    classmate_phone = _phone(required=True)


class AssistanceCreatedSchema(Schema):
    request_id = fields.UUID(required=True)
    status = fields.String(required=True)
    remaining_today = fields.Integer(required=True)


class AssistanceItemSchema(Schema):
    request_id = fields.UUID(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(("open", "approved", "declined"))
    )
    created_at = fields.AwareDateTime(required=True)
    answered_at = fields.AwareDateTime(allow_none=True)


class DuplicateMoveSchema(Schema):
    state = fields.String(
        required=True,
        metadata={"description": "holding, applied, disputed or cancelled"},
    )
    effective_at = fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "when a holding move takes effect undisputed"},
    )


class DuplicateStatusSchema(Schema):
    account_status = fields.String(required=True)
    resolved = fields.Boolean(required=True)
    move = fields.Nested(DuplicateMoveSchema, allow_none=True)
    reviews = fields.List(fields.Nested(ReviewSchema), required=True)
    assistance_requests = fields.List(
        fields.Nested(AssistanceItemSchema), required=True
    )
    assistance_remaining_today = fields.Integer(required=True)


class InboxMessageSchema(Schema):
    message_id = fields.UUID(required=True)
    kind = fields.String(
        required=True,
        metadata={
            "description": "assistance_request, assistance_outcome, review_outcome, "
            "vouch_request, phone_recovery_outcome, correction_outcome (params: "
            "school_code, status, code — the school acted on a correction request), "
            "duplicate_move (params: state holding/applied/disputed/cancelled, side "
            "requester/holder, effective_at while holding, else at)"
        },
    )
    params = fields.Dict(required=True)
    needs_answer = fields.Boolean(required=True)
    answer = fields.Boolean(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    read = fields.Boolean(required=True)


class InboxPageSchema(Schema):
    items = fields.List(fields.Nested(InboxMessageSchema), required=True)
    total = fields.Integer(required=True)
    unread = fields.Integer(required=True)
    to_answer = fields.Integer(required=True)
    next_offset = fields.Integer(allow_none=True)


class InboxAnswerSchema(Schema):
    approve = StrictBoolean(required=True)


class InboxAnsweredSchema(Schema):
    message_id = fields.UUID(required=True)
    answer = fields.Boolean(required=True)


class InboxReadSchema(Schema):
    message_id = fields.UUID(required=True)
    read = fields.Boolean(required=True)


class VouchInvitationSchema(Schema):
    student_numbers = fields.List(
        fields.String(validate=[validate.Length(1, 64), NOT_BLANK]),
        required=True,
        validate=validate.Length(1, 5),
        metadata={"example": ["2024002", "2024003"]},
    )


class VouchInvitedSchema(Schema):
    recovery_id = fields.UUID(required=True)
    asked = fields.Integer(required=True)
