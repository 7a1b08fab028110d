"""JSON log lines with the request id, and personal data masked.

Configured from each service's ``LOGGING`` config key (Nameko applies it with
``logging.config.dictConfig``). Masking is the safety net, not the policy:
code never logs codes, passwords, tokens or ID numbers on purpose.
"""

import json
import logging
import re
from datetime import datetime, timezone

from services.common.plumbing.context import current_request_id
from services.common.rules.masking import mask_email, mask_id_number, mask_phone

__all__ = ["JsonFormatter", "mask_text", "mask_phone", "mask_email", "mask_id_number"]

# Order matters: ID numbers (18/15 digits) before phones (11 digits).
_ID18 = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{9}(\d{3})(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<![0-9])(\+?86)?(1[3-9]\d)\d{4}(\d{4})(?![0-9])")
_EMAIL = re.compile(
    r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)


def mask_text(text):
    """Mask anything in free text that looks like an ID number, phone or email."""
    text = _ID18.sub(lambda m: m.group(1) + "*" * 11 + m.group(2), text)
    text = _ID15.sub(lambda m: m.group(1) + "*" * 9 + m.group(2), text)
    text = _PHONE.sub(lambda m: m.group(2) + "****" + m.group(3), text)
    text = _EMAIL.sub(lambda m: m.group(1) + "***@" + m.group(2), text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, service, request_id, msg."""

    def __init__(self, service=None, **kwargs):
        super().__init__()
        self.service = service

    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "request_id": current_request_id(),
            "msg": mask_text(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)
