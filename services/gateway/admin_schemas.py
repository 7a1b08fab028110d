"""Admins' and reviewers' public HTTP shapes (``admin.py``)."""

from marshmallow import (
    Schema,
    fields,
    validate,
)

from services.common.contract.fields import (
    StrictBoolean,
)
from services.gateway.schemas import (
    NOT_BLANK,
    ReviewSchema,
)


class SchoolInfoSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    region = fields.String(allow_none=True)
    token_issued_at = fields.AwareDateTime(required=True)
    created_at = fields.AwareDateTime(required=True)


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
