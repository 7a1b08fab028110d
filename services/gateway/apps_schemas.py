"""The student apps' public HTTP shapes (``apps.py``)."""

from marshmallow import (
    Schema,
    fields,
    validate,
    validates_schema,
)

from services.common.contract.fields import (
    StrictBoolean,
    require_one_way_in,
)
from services.common.contract.vocabulary import (
    AUTH_INFO_FIELDS,
    CODE_CHANNELS,
    CODE_PURPOSES,
    ID_TYPES,
    LINK_PROVIDERS,
)
from services.common.rules.contacts import EMAIL_PATTERN, MOBILE_PATTERN
from services.gateway.schemas import (
    CODE_FIELD,
    EMAIL,
    NEW_PASSWORD,
    NOT_BLANK,
    SCHOOL_CODE_FIELD,
    _code,
    _current_password,
    _password,
    _phone,
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
        validate=[validate.Length(1, 254), NOT_BLANK],
        metadata={
            # Documented here, enforced by verification (one rule for every
            # caller: domain.checked_destination).
            "pattern": f"(?:{MOBILE_PATTERN})|(?:{EMAIL_PATTERN})",
            "example": "13812345678",
            "description": "a mainland mobile for sms, an address for email "
            "(400 phone_invalid / email_invalid, 422 destination_channel_mismatch)",
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
    code_id = fields.String(
        required=True,
        metadata={
            "example": "4711-3f9c2a7d5e1b8c0a6d4f",
            "description": "read the message's delivery at /api/v1/codes/{code_id}",
        },
    )
    expires_at = fields.AwareDateTime(required=True)
    resend_after = fields.Integer(required=True, metadata={"example": 60})
    remaining_today = fields.Integer(required=True, metadata={"example": 4})
    destination_masked = fields.String(metadata={"example": "138****5678"})


DELIVERY_STATES = ("queued", "sent", "submitted", "delivered", "failed", "expired")


class CodeDeliverySchema(Schema):
    code_id = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(("sms", "email")))
    destination_masked = fields.String(required=True)
    state = fields.String(
        required=True,
        validate=validate.OneOf(DELIVERY_STATES),
        metadata={
            "description": "queued: waiting for the provider; sent: taken by a "
            "provider without receipts; submitted: taken, no receipt yet; "
            "delivered / failed / expired: the operator's receipt (failed and "
            "expired give the send back: ask again, or try email)"
        },
    )
    updated_at = fields.AwareDateTime(allow_none=True)
    expires_at = fields.AwareDateTime(required=True)


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


class CorrectionRequestSchema(Schema):
    note = fields.String(
        required=True,
        validate=validate.Length(2, 500),
        metadata={"example": "我的名字是“喆”，学籍里录成了“哲”"},
    )
