"""Errors that cross service boundaries.

Every refusal is a ``ServiceError`` with a stable snake_case ``code`` and a
human message in Chinese and English taken from ``MESSAGES``. The classes
are registered with Nameko's ``deserialize_to_instance`` (in
``services.common.rpc``, keeping this module free of Nameko so domain
modules can import it) so that an error
raised in ``identity`` arrives in the gateway as the *same class*, and the
gateway maps classes to HTTP status codes in one table.

    ServiceError                     (code, extra)
    ├── InvalidRequest       400     malformed input (schema validation)
    ├── Unauthenticated      401
    ├── Forbidden            403
    ├── NotFound             404
    ├── Conflict             409
    ├── RuleViolation        422     fails a domain rule
    ├── Throttled            429     carries retry_after / resets_at
    ├── ServiceUnavailable   503     a dependency is down
    └── DeadlineExceeded     504     the caller's deadline passed
"""

import json

__all__ = [
    "MESSAGES",
    "ServiceError",
    "InvalidRequest",
    "Unauthenticated",
    "Forbidden",
    "NotFound",
    "Conflict",
    "RuleViolation",
    "Throttled",
    "ServiceUnavailable",
    "DeadlineExceeded",
    "message_for",
    "ALL_ERROR_CLASSES",
]

# code -> (Chinese, English). One catalogue so clients see the same text for
# the same code whichever service refused.
MESSAGES = {
    "invalid_request": ("请求格式不正确", "The request is malformed."),
    "not_found": ("未找到", "Not found."),
    "internal_error": (
        "服务内部错误，请稍后重试",
        "Internal error; please retry later.",
    ),
    "service_unavailable": (
        "服务暂不可用，请稍后重试",
        "A service is unavailable; please retry later.",
    ),
    "deadline_exceeded": (
        "服务响应超时，请稍后重试",
        "A service did not answer in time; please retry.",
    ),
    "unauthenticated": ("请先登录", "Authentication is required."),
    "forbidden": ("无权执行此操作", "You are not allowed to do this."),
    "conflict": ("与当前状态冲突", "This conflicts with the current state."),
    "rule_violation": ("不符合规则", "This breaks a rule."),
    "too_frequent": (
        "不能频繁使用该功能，请稍后再试",
        "Too many requests; please wait and retry.",
    ),
    "method_not_allowed": ("不支持该请求方法", "Method not allowed."),
}


def message_for(code):
    """(zh, en) text for ``code``; a generic pair if it is not catalogued."""
    return MESSAGES.get(code, ("请求未能完成", "The request could not be completed."))


class ServiceError(Exception):
    """A refusal with a stable ``code``; ``extra`` carries client data.

    Both live in ``args`` because Nameko rebuilds remote exceptions as
    ``cls(*exc_args)``; ``extra`` travels as a JSON string because Nameko's
    ``safe_for_serialization`` turns numbers inside args into strings.
    """

    default_code = "internal_error"

    def __init__(self, code=None, extra=None):
        code = code or self.default_code
        if isinstance(extra, str):
            extra = json.loads(extra)
        extra = dict(extra or {})
        super().__init__(code, json.dumps(extra, ensure_ascii=False, default=str))
        self.code = code
        self.extra = extra

    @property
    def message_zh(self):
        return message_for(self.code)[0]

    @property
    def message_en(self):
        return message_for(self.code)[1]

    def __str__(self):
        # Only the code: messages and extras may carry personal data in future
        # subclasses, and str(exc) ends up in logs.
        return self.code


class InvalidRequest(ServiceError):
    default_code = "invalid_request"


class Unauthenticated(ServiceError):
    default_code = "unauthenticated"


class Forbidden(ServiceError):
    default_code = "forbidden"


class NotFound(ServiceError):
    default_code = "not_found"


class Conflict(ServiceError):
    default_code = "conflict"


class RuleViolation(ServiceError):
    default_code = "rule_violation"


class Throttled(ServiceError):
    default_code = "too_frequent"


class ServiceUnavailable(ServiceError):
    default_code = "service_unavailable"


class DeadlineExceeded(ServiceError):
    default_code = "deadline_exceeded"


ALL_ERROR_CLASSES = (
    ServiceError,
    InvalidRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    RuleViolation,
    Throttled,
    ServiceUnavailable,
    DeadlineExceeded,
)
