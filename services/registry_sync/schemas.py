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


# -- SCIM ----------------------------------------------------------------------
SCIM_KINDS = ("User", "Group")
# What may follow the server's base URL in meta.location (the gateway's own
# scheme://host/scim/v2, taken from the request).
BASE_URL = validate.Regexp(r"^https?://[^\s]{1,200}$")


class _ScimRequest(_Strict):
    school_code = fields.String(required=True, validate=SCHOOL_CODE)
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
