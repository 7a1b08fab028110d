"""What became of a message after the provider took it: delivery receipts.

Pure rules (no broker, no database). States of a delivery, as the client
app sees them (``delivery_states.mermaid`` beside this file)::

    queued ──provider took it──▶ submitted ──receipt──▶ delivered
       │                            │                 ├─▶ failed
       │                            │                 └─▶ expired
       │                            └── (provider without receipts) = sent
       └──given up after retries──▶ failed

A receipt may overtake the provider's answer (it is a separate HTTP call
from the gateway), arrive twice, or arrive late: a final state is never
left, and ``submitted`` never overwrites a receipt already recorded.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import hmac
from hashlib import sha256

__all__ = [
    "FINAL_STATES",
    "RECEIPT_STATES",
    "client_state",
    "kannel_receipt_state",
    "aliyun_receipt_state",
    "receipt_signature",
    "receipt_signature_valid",
    "code_reference",
    "code_id_of_reference",
    "UNDELIVERED",
]

RECEIPT_STATES = ("submitted", "delivered", "failed", "expired")
FINAL_STATES = frozenset({"delivered", "failed", "expired"})
# The message did not reach the phone: its send is given back to the quota.
UNDELIVERED = frozenset({"failed", "expired"})

# Kannel's dlr-url %d: 1 delivered to phone, 2 not delivered to phone,
# 4 queued on the SMSC, 8 delivered to the SMSC, 16 not delivered to the SMSC.
_KANNEL_DELIVERED, _KANNEL_UNDELIVERED = 1, 2
_KANNEL_SMSC_REJECTED = 16
# The SMPP receipt's "stat:" field (SMPP 3.4, Appendix B).
_SMPP_STAT = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "UNKNOWN": "failed",
}


def _smpp_stat(report):
    for part in (report or "").split():
        if part.startswith("stat:"):
            return _SMPP_STAT.get(part[5:].upper())
    return None


def kannel_receipt_state(dlr_type, report=None):
    """The state a Kannel delivery report moves a delivery to, or None when
    it says nothing final (queued on, or handed to, the SMSC)."""
    if dlr_type & _KANNEL_DELIVERED:
        return "delivered"
    if dlr_type & (_KANNEL_UNDELIVERED | _KANNEL_SMSC_REJECTED):
        # The operator's own word (EXPIRED vs UNDELIV) when it gave one.
        stat = _smpp_stat(report)
        return stat if stat in UNDELIVERED else "failed"
    return None


# Alibaba Cloud SMS receipts (SmsReport, pushed or pulled): ``success`` and
# ``err_code``. Codes that mean the message outlived its validity.
_ALIYUN_EXPIRED = frozenset({"EXPIRED", "MK:0004", "IB:0008"})


def aliyun_receipt_state(report):
    """The state an Alibaba Cloud ``SmsReport`` item means."""
    if report.get("success") in (True, "true", "True"):
        return "delivered"
    code = str(report.get("err_code") or "").upper()
    if code == "DELIVERED":
        return "delivered"
    return "expired" if code in _ALIYUN_EXPIRED else "failed"


def client_state(status, receipt_state):
    """The state a client app is shown, from the queue's ``status``
    (pending/sent/failed) and the receipt's."""
    if receipt_state in FINAL_STATES:
        return receipt_state
    if status == "pending":
        return "queued"
    if status == "failed":
        return "failed"
    return receipt_state or "sent"


def _mac(key, label, value):
    return hmac.new(key, f"{label}:{value}".encode(), sha256).hexdigest()[:32]


def receipt_signature(key, delivery_id):
    """What the receipt URL of one delivery carries: only whoever got the
    URL from us (the SMS gateway) can report on that delivery."""
    return _mac(key, "receipt", int(delivery_id))


def receipt_signature_valid(key, delivery_id, signature):
    return hmac.compare_digest(receipt_signature(key, delivery_id), signature or "")


def code_reference(key, code_id):
    """The client's handle on its code's delivery: the id and its keyed tag,
    so ids cannot be walked to read other people's deliveries."""
    return f"{int(code_id)}-{_mac(key, 'code', int(code_id))[:20]}"


def code_id_of_reference(key, reference):
    """The code id a reference names, or None when it is not one of ours."""
    number, _, tag = (reference or "").partition("-")
    if not number.isdigit() or len(number) > 18:
        return None
    expected = code_reference(key, int(number))
    return int(number) if hmac.compare_digest(expected, reference) else None
