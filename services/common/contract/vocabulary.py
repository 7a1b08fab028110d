"""Words every service and the gateway agree on (the public contract's
enumerations), kept once so services need not import each other."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

__all__ = [
    "BACKEND_SERVICES",
    "CODE_PURPOSES",
    "CODE_CHANNELS",
    "ID_TYPES",
    "AUTH_INFO_FIELDS",
    "LINK_PROVIDERS",
    "OWNED_COURSE_KINDS",
    "DEVICE_ID_PATTERN",
    "MAX_BALANCE_FEN",
]

# The services behind the gateway, each with its own queue and database.
BACKEND_SERVICES = ("identity", "verification", "recovery", "registry_sync")

# A wallet balance in fen fits PostgreSQL's bigint with room to spare:
# 10^15 fen is ten trillion yuan. Larger is malformed, not an overflow.
MAX_BALANCE_FEN = 10**15

# An app's device id (X-Device-Id): what identity accepts and the gateway
# publishes and enforces.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{8,128}$"

# What a verification code may be used for; a code verifies only for its own.
CODE_PURPOSES = (
    "register",
    "login_new_device",
    "reset_password",
    "change_phone",
    "change_email",
    "recover_phone",
    "change_auth_info",
    "deactivate",
    "guardian_check",
)
CODE_CHANNELS = ("sms", "email")

# ID documents accepted at registration (API.md: id_type).
ID_TYPES = (
    "resident_id",
    "hmt_residence_permit",
    "passport",
    "foreign_permanent_residence",
    "other",
)

# Authentication info (认证信息) a student may change under the school's rules.
AUTH_INFO_FIELDS = (
    "school_code",
    "student_number",
    "name",
    "department",
    "enrollment_year",
)

# Third-party identities an account may link (API.md: POST /api/v1/me/links).
LINK_PROVIDERS = ("wechat", "alipay")

# Courses an account may own; any of them blocks deactivation (seed 000 §三).
OWNED_COURSE_KINDS = ("shared", "flipped", "interest", "open")
