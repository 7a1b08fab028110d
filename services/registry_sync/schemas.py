"""Shapes of the registry_sync service's RPC payloads and answers."""

from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

from services.common.roles import SCHOOL_CODE_PATTERN

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


class SchoolToken(Schema):
    code = fields.String(required=True)
    api_token = fields.String(required=True)


class SchoolInfo(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    region = fields.String(allow_none=True)
    token_issued_at = fields.AwareDateTime(required=True)
    created_at = fields.AwareDateTime(required=True)


class AuthenticateSchoolRequest(_Strict):
    token = fields.String(required=True, validate=validate.Length(1, 256))
    # What the school system is doing, for the audit record.
    action = fields.String(
        required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_.]{1,63}$")
    )
