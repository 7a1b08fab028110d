"""Errors that cross service boundaries.

Every refusal is a ``ServiceError`` with a stable snake_case ``code``; the
gateway, which renders refusals, holds their Chinese and English messages
(``services.gateway.messages``). The classes
are registered with Nameko's ``deserialize_to_instance`` (in
``services.common.plumbing.rpc``, keeping this module free of Nameko so domain
modules can import it) so that an error
raised in ``identity`` arrives in the gateway as the *same class*, and the
gateway maps classes to HTTP status codes in one table.

    ServiceError                     (code, extra)
    ├── InvalidRequest       400     malformed input (schema validation)
    ├── Unauthenticated      401
    ├── Forbidden            403
    ├── NotFound             404
    ├── Conflict             409
    ├── PreconditionFailed   412     If-Match names an older version
    ├── RuleViolation        422     fails a domain rule
    ├── Throttled            429     carries retry_after / resets_at
    ├── ServiceUnavailable   503     a dependency is down
    └── DeadlineExceeded     504     the caller's deadline passed
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import json

__all__ = [
    "find_nul",
    "ServiceError",
    "InvalidRequest",
    "Unauthenticated",
    "Forbidden",
    "NotFound",
    "Conflict",
    "PreconditionFailed",
    "PayloadTooLarge",
    "RuleViolation",
    "Throttled",
    "ServiceUnavailable",
    "DeadlineExceeded",
    "ALL_ERROR_CLASSES",
]


def find_nul(value, path="body"):
    """The path of the first string (or key) holding a NUL character, else
    ``None``. PostgreSQL text cannot store NUL, so such input is refused as
    malformed at every boundary instead of failing deep in a store."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{path}.<key>"
            found = find_nul(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None


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


class PreconditionFailed(ServiceError):
    default_code = "precondition_failed"


class PayloadTooLarge(ServiceError):
    default_code = "payload_too_large"


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
    PreconditionFailed,
    RuleViolation,
    Throttled,
    ServiceUnavailable,
    DeadlineExceeded,
)
