"""Shapes of the identity service's RPC payloads and answers."""

from marshmallow import (
    EXCLUDE,
    Schema,
    fields,
    validate,
    validates_schema,
)

from services.common.contract.events import OwnedCourse
from services.common.contract.fields import UtcDateTime, require_one_way_in
from services.common.contract.vocabulary import (
    AUTH_INFO_FIELDS,
    DEVICE_ID_PATTERN,
    LINK_PROVIDERS,
    MAX_BALANCE_FEN,
)
from services.common.rules.realname import ID_TYPES
from services.common.rules.roles import STAFF_ROLES

__all__ = [
    "RegisterByPhoneRequest",
    "RegisterByStudentNumberRequest",
    "AccountCreated",
    "LoginRequest",
    "SessionCreated",
    "AuthenticateRequest",
    "Principal",
    "UsernameRecoveryRequest",
    "LoginNames",
    "ChangePhoneRequest",
    "ChangeEmailRequest",
    "SecurityQuestionsRequest",
    "GuardianRequest",
    "AuthInfoChangeRequest",
    "Permissions",
    "DeactivationStatus",
    "DeactivateRequest",
    "LinkRequest",
    "AccountFactsRequest",
    "Profile",
    "RealNameOf",
    "SetRolesRequest",
]

CODE = validate.Regexp(r"^\d{6}$")
DEVICE_ID = validate.Regexp(DEVICE_ID_PATTERN)


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class RegisterByPhoneRequest(_Strict):
    phone = fields.String(required=True, validate=validate.Length(1, 32))
    code = fields.String(required=True, validate=CODE)
    password = fields.String(required=True, validate=validate.Length(1, 256))
    name = fields.String(required=True, validate=validate.Length(1, 64))
    id_type = fields.String(required=True, validate=validate.OneOf(ID_TYPES))
    id_number = fields.String(required=True, validate=validate.Length(1, 64))
    email = fields.String(load_default=None, validate=validate.Length(max=254))
    register_anyway = fields.Boolean(load_default=False)
    device_id = fields.String(load_default=None, validate=DEVICE_ID)


class RegisterByStudentNumberRequest(_Strict):
    """K-12: the school gives the student number; a guardian's phone proves
    who registers (``guardian_check`` code)."""

    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    student_number = fields.String(required=True, validate=validate.Length(1, 32))
    name = fields.String(required=True, validate=validate.Length(1, 64))
    guardian_phone = fields.String(required=True, validate=validate.Length(1, 32))
    code = fields.String(required=True, validate=CODE)
    password = fields.String(required=True, validate=validate.Length(1, 256))
    device_id = fields.String(load_default=None, validate=DEVICE_ID)


class AccountCreated(Schema):
    account_id = fields.UUID(required=True)
    passport_id = fields.String(required=True)
    status = fields.String(required=True)


class LoginRequest(_Strict):
    """Either ``login`` + ``password`` or ``provider`` + ``assertion``."""

    login = fields.String(load_default=None, validate=validate.Length(1, 254))
    password = fields.String(load_default=None, validate=validate.Length(1, 256))
    provider = fields.String(load_default=None, validate=validate.OneOf(LINK_PROVIDERS))
    assertion = fields.String(load_default=None, validate=validate.Length(1, 8192))
    code = fields.String(load_default=None, validate=CODE)
    device_id = fields.String(required=True, validate=DEVICE_ID)
    client_ip = fields.String(load_default=None, validate=validate.Length(max=64))

    @validates_schema
    def one_way_in(self, data, **kwargs):
        require_one_way_in(data)


class SessionCreated(Schema):
    token = fields.String(required=True)
    session_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)
    expires_at = fields.AwareDateTime(required=True)


class AuthenticateRequest(_Strict):
    token = fields.String(required=True, validate=validate.Length(1, 256))
    device_id = fields.String(load_default=None, validate=validate.Length(max=128))


class Principal(Schema):
    """Who a session token speaks for."""

    account_id = fields.UUID(required=True)
    session_id = fields.UUID(required=True)
    status = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    school_code = fields.String(allow_none=True)
    expires_at = fields.AwareDateTime(required=True)


class UsernameRecoveryRequest(_Strict):
    id_number = fields.String(required=True, validate=validate.Length(1, 64))
    name = fields.String(required=True, validate=validate.Length(1, 64))
    captcha_id = fields.UUID(required=True)
    captcha_answer = fields.String(required=True, validate=validate.Length(1, 16))
    client_ip = fields.String(load_default=None, validate=validate.Length(max=64))


class LoginName(Schema):
    kind = fields.String(required=True)
    value = fields.String(required=True)


class LoginNames(Schema):
    login_names = fields.List(fields.Nested(LoginName), required=True)


class _AccountAction(_Strict):
    account_id = fields.UUID(required=True)
    # Where the request came from, for the notice the change sends.
    device_id = fields.String(load_default=None, validate=validate.Length(max=128))
    client_ip = fields.String(load_default=None, validate=validate.Length(max=64))


class ChangePhoneRequest(_AccountAction):
    password = fields.String(required=True, validate=validate.Length(1, 256))
    new_phone = fields.String(required=True, validate=validate.Length(1, 32))
    code = fields.String(required=True, validate=CODE)


class ChangeEmailRequest(_AccountAction):
    password = fields.String(required=True, validate=validate.Length(1, 256))
    new_email = fields.String(required=True, validate=validate.Length(1, 254))
    code = fields.String(required=True, validate=CODE)


class SecurityQuestion(_Strict):
    question = fields.String(required=True, validate=validate.Length(2, 100))
    answer = fields.String(required=True, validate=validate.Length(1, 100))


class SecurityQuestionsRequest(_AccountAction):
    password = fields.String(required=True, validate=validate.Length(1, 256))
    questions = fields.List(
        fields.Nested(SecurityQuestion), required=True, validate=validate.Length(3, 3)
    )


class GuardianRequest(_AccountAction):
    guardian_phone = fields.String(required=True, validate=validate.Length(1, 32))
    code = fields.String(required=True, validate=CODE)


class AuthInfoChangeRequest(_AccountAction):
    code = fields.String(required=True, validate=CODE)
    school_code = fields.String(load_default=None, validate=validate.Length(1, 32))
    student_number = fields.String(load_default=None, validate=validate.Length(1, 32))
    name = fields.String(load_default=None, validate=validate.Length(1, 64))
    department = fields.String(load_default=None, validate=validate.Length(1, 64))
    enrollment_year = fields.Integer(load_default=None, strict=True)


class FieldPermission(Schema):
    changeable = fields.Boolean(required=True)
    reason = fields.String(allow_none=True)
    reasons = fields.List(fields.String())
    unlocks_at = fields.AwareDateTime(allow_none=True)


class Permissions(Schema):
    fields_ = fields.Dict(
        keys=fields.String(validate=validate.OneOf(AUTH_INFO_FIELDS)),
        values=fields.Nested(FieldPermission),
        required=True,
        data_key="fields",
    )


class Unmet(Schema):
    condition = fields.String(required=True)
    detail = fields.Dict(required=True)


class DeactivationStatus(Schema):
    eligible = fields.Boolean(required=True)
    unmet = fields.List(fields.Nested(Unmet), required=True)


class DeactivateRequest(_AccountAction):
    code = fields.String(required=True, validate=CODE)


class LinkRequest(_AccountAction):
    provider = fields.String(required=True, validate=validate.OneOf(LINK_PROVIDERS))
    assertion = fields.String(required=True, validate=validate.Length(1, 8192))


class AccountFactsRequest(_AccountAction):
    """What the wallet and course systems know (the internal endpoint)."""

    balance_fen = fields.Integer(
        load_default=None,
        strict=True,
        validate=validate.Range(min=0, max=MAX_BALANCE_FEN),
    )
    owned = fields.List(fields.Nested(OwnedCourse), load_default=None)
    as_of = UtcDateTime(required=True)


class Guardian(Schema):
    required = fields.Boolean(required=True)
    verified = fields.Boolean(required=True)
    phone_masked = fields.String(allow_none=True)


class RealNameOf(Schema):
    """The account's own real-name data, for registry verification only
    (registry_sync compares it with the roster record; it is never shown,
    logged or stored in the clear there). ``id_number`` is the normalised
    number, ``None`` for an account registered by student number."""

    account_id = fields.UUID(required=True)
    name = fields.String(allow_none=True)
    id_type = fields.String(allow_none=True)
    id_number = fields.String(allow_none=True)
    birth_date = fields.Date(allow_none=True)
    school_code = fields.String(allow_none=True)
    student_number = fields.String(allow_none=True)


class Profile(Schema):
    """``GET /api/v1/me``: personal data masked."""

    account_id = fields.UUID(required=True)
    passport_id = fields.String(required=True)
    status = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    name = fields.String(allow_none=True)
    phone_masked = fields.String(allow_none=True)
    email_masked = fields.String(allow_none=True)
    id_type = fields.String(allow_none=True)
    id_number_masked = fields.String(allow_none=True)
    school_code = fields.String(allow_none=True)
    student_number = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    enrollment_year = fields.Integer(allow_none=True)
    registry_status = fields.String(required=True)
    guardian = fields.Nested(Guardian, required=True)
    security_questions_set = fields.Boolean(required=True)
    linked_providers = fields.List(fields.String(), required=True)
    created_at = fields.AwareDateTime(required=True)


class RoleGrant(_Strict):
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))
    school_code = fields.String(load_default=None, validate=validate.Length(1, 32))


class SetRolesRequest(_Strict):
    """Ops replace an account's staff roles (``student`` always stays)."""

    account_id = fields.UUID(required=True)
    roles = fields.List(
        fields.Nested(RoleGrant), required=True, validate=validate.Length(max=20)
    )
    actor = fields.String(required=True, validate=validate.Length(1, 128))


# -- for the recovery service ----------------------------------------------------
class RecoveryMatchRequest(_Strict):
    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    student_number = fields.String(required=True, validate=validate.Length(1, 64))
    name = fields.String(required=True, validate=validate.Length(1, 64))


class NewPasswordRequest(_Strict):
    password = fields.String(required=True, validate=validate.Length(1, 256))


class ResetTargetsRequest(_Strict):
    login = fields.String(required=True, validate=validate.Length(1, 254))


class SecurityAnswersRequest(_Strict):
    account_id = fields.UUID(required=True)
    answers = fields.List(
        fields.String(validate=validate.Length(1, 128)),
        required=True,
        validate=validate.Length(3, 3),
    )


class ResetPasswordRequest(_AccountAction):
    password = fields.String(required=True, validate=validate.Length(1, 256))
    method = fields.String(
        required=True, validate=validate.OneOf(("sms", "email", "questions"))
    )


class ClassmateLookupRequest(_Strict):
    phone = fields.String(required=True, validate=validate.Length(1, 32))
    name = fields.String(required=True, validate=validate.Length(1, 64))


class RecoveryHandover(_Strict):
    recovery_id = fields.UUID(required=True)
    account_id = fields.UUID(required=True)
    new_phone = fields.String(required=True, validate=validate.Length(1, 32))
    password_hash = fields.String(required=True, validate=validate.Length(1, 512))
    not_me_url = fields.String(required=True, validate=validate.Length(1, 2048))
    cancel_until = UtcDateTime(required=True)


class StudentsLookupRequest(_Strict):
    school_code = fields.String(required=True, validate=validate.Length(1, 32))
    student_numbers = fields.List(
        fields.String(validate=validate.Length(1, 64)),
        required=True,
        validate=validate.Length(1, 5),
    )
