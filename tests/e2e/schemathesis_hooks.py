"""Schemathesis hooks for the contract tier's stateful run
(``SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks``).

The stateful phase follows the OpenAPI links (register → log in → use the
session; start a phone recovery → new phone → a classmate vouches). A link
only leads somewhere from a success, and some successes need what no
generator can invent: a code that was really sent, a student the school
really enrolled. In the stateful phase only, these hooks supply them the
way a user would — a code requested from the gateway and read off the
capture server, the enrolled student the test prepared — and leave every
other phase's generated data alone.

``STATEFUL_CONTEXT`` (JSON) carries the gateway and capture URLs, the
enrolled requester and the classmate who vouches.
"""

import functools
import itertools
import json
import os
import random
import uuid

import requests
import schemathesis
from schemathesis.generation.meta import TestPhase

from services.common.plumbing.testing import (
    captured_code,
    captured_messages,
    random_client_ip,
    random_phone,
    random_resident_id,
)

PASSWORD = "a long enough secret"
# The stateful phase runs its steps one after another: a new-phone step
# belongs to the flow the last start began.
_TURNS = itertools.count()
_STARTED = {}
# Hypothesis seeds the ``random`` module for reproducible runs: fresh phones
# and ID numbers come from a generator of our own, or every register step
# would ask for the same phone.
_RNG = random.Random(uuid.uuid4().int)


@functools.cache
def _context():
    return json.loads(os.environ["STATEFUL_CONTEXT"])


def _real_code(purpose, phone):
    """Request a code for ``phone`` and read it off the capture server."""
    context = _context()
    before = len(captured_messages(context["capture_url"], phone))
    sent = requests.post(
        f"{context['gateway_url']}/api/v1/codes",
        json={"channel": "sms", "destination": phone, "purpose": purpose},
        headers={"X-Forwarded-For": random_client_ip()},
        timeout=15,
    )
    # Refused (a quota) or never delivered: the step is answered 422, still checked.
    if sent.status_code != 202:
        return "000000"
    return captured_code(context["capture_url"], phone, before) or "000000"


def _path(case):
    return case.operation.method.upper(), case.operation.path


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.meta is None or case.meta.phase.name != TestPhase.STATEFUL:
        return
    method, path = _path(case)
    context = _context()
    headers = case.headers if case.headers is not None else {}
    if (method, path) == ("POST", "/api/v1/accounts"):
        phone = random_phone("134", _RNG)
        case.body = {
            "phone": phone,
            "code": _real_code("register", phone),
            "password": PASSWORD,
            "name": "状态机",
            "id_type": "resident_id",
            "id_number": random_resident_id(2001, _RNG),
        }
        headers["X-Device-Id"] = "dev-" + uuid.uuid4().hex
    elif (method, path) == ("POST", "/api/v1/phone-recoveries"):
        # Round robin over the enrolled requesters: each may hold one open
        # flow, so the next start is for another one.
        requesters = context["requesters"]
        requester = _STARTED["requester"] = requesters[next(_TURNS) % len(requesters)]
        case.body = {
            key: requester[key] for key in ("school_code", "student_number", "name")
        }
    elif path == "/api/v1/phone-recoveries/{recovery_id}/new-phone":
        new_phone = random_phone("139", _RNG)
        requester = _STARTED.get("requester") or context["requesters"][0]
        case.body = {
            "old_phone": requester["phone"],
            "new_phone": new_phone,
            "code": _real_code("recover_phone", new_phone),
            "new_password": "a brand new secret 2026",
        }
    case.headers = headers


@schemathesis.auth().apply_to(path="/api/v1/vouches/{share_token}")
class VoucherSession:
    """The classmate's session on the vouch operations: declared as auth, so
    schemathesis' own checks can still take it away and expect a 401."""

    def get(self, case, ctx):
        return _context()["voucher_auth"]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), **data}
