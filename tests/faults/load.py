"""A steady, bounded load of real flows through the gateway, recording what
every request got back, for the fault tier to judge after each fault.

Flows (each worker picks them in turn, so every one runs during a fault):

* ``register`` — a register code to a fresh phone, read from the capture
  server, then ``POST /api/v1/accounts``;
* ``login`` — ``POST /api/v1/sessions`` for an account made before the load,
  on its own device, then ``GET /api/v1/me`` with the new session;
* ``send_code`` — a register code to a fresh phone;
* ``roster`` — a school pushes one student over SCIM;
* ``vouch`` — a classmate vouches for a pending phone recovery (the second
  vouch completes it: recovery → identity → recovery events).

An outcome is *acknowledged* when the platform said yes (2xx): that state
change must then be there exactly once. A documented refusal (4xx) or an
outage answer (503 ``service_unavailable`` / ``database_unavailable`` /
``database_conflict``, 504 ``deadline_exceeded``) leaves it *ambiguous* —
the change may or may not have happened, but never twice. A 500, a body
that is not problem+json, or no answer within ``CLIENT_TIMEOUT`` (a hang
past every deadline) is a failure of the platform.
"""

import itertools
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from services.common.plumbing.testing import (
    captured_code,
    random_client_ip,
    random_phone,
    random_resident_id,
    scim_student,
)

PASSWORD = "a long enough secret"
# The gateway's RPC deadline is 5 s; a request makes at most a few calls in
# sequence, each bounded. No answer in this time is a hang.
CLIENT_TIMEOUT = 20.0
# What an outage may answer: retry-later codes, each documented in the API.
OUTAGE_CODES = {
    "service_unavailable",
    "database_unavailable",
    "database_conflict",
    "database_busy",
    "deadline_exceeded",
}


def error_code(answer):
    """The stable code of a refusal: problem+json's ``code``, or for SCIM
    (RFC 7644 §3.12 errors) the ``[code]`` its ``detail`` starts with."""
    try:
        body = answer.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("code"):
        return body["code"]
    found = re.match(r"\[([a-z_]+)\]", str(body.get("detail") or ""))
    return found.group(1) if found else None


@dataclass
class Outcome:
    flow: str
    step: str
    status: int  # 0: no answer (timeout or connection error)
    code: str | None
    elapsed: float
    ident: dict = field(default_factory=dict)
    error: str | None = None
    at: float = 0.0  # time.monotonic() when it was sent

    @property
    def acknowledged(self):
        return 200 <= self.status < 300

    @property
    def platform_failure(self):
        """A 500, no answer, or an error without a stable code."""
        if self.status == 0 or self.status >= 500 and self.code not in OUTAGE_CODES:
            return True
        return self.status >= 400 and not self.code


class Load:
    """``Load(gateway_url, capture_url, fixtures).run(workers)`` in the
    background; ``stop()`` returns the outcomes."""

    def __init__(self, gateway_url, capture_url, accounts, school, vouch_jobs):
        self.gateway_url = gateway_url
        self.capture_url = capture_url
        self.accounts = accounts  # [{"phone", "password", "device"}] made before
        self.school = school  # (code, api token)
        self.vouch_jobs = list(vouch_jobs)  # [(voucher auth headers, share token)]
        self.outcomes = []
        self._lock = threading.Lock()
        self._running = False
        self._threads = []
        self._flows = itertools.cycle(
            ["register", "login", "send_code", "roster", "login", "vouch"]
        )

    # -- running ---------------------------------------------------------------
    def start(self, workers=6):
        self._running = True
        for _ in range(workers):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._running = False
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT * 3)
        return list(self.outcomes)

    def _work(self):
        http = requests.Session()
        while self._running:
            with self._lock:
                flow = next(self._flows)
            getattr(self, f"_{flow}")(http)
            time.sleep(0.05)

    # -- one request -----------------------------------------------------------
    def call(self, http, flow, step, method, path, ident=None, **kwargs):
        headers = {"X-Forwarded-For": random_client_ip(), **kwargs.pop("headers", {})}
        started = time.monotonic()
        try:
            answer = http.request(
                method,
                self.gateway_url + path,
                headers=headers,
                timeout=CLIENT_TIMEOUT,
                **kwargs,
            )
        except requests.RequestException as exc:
            outcome = Outcome(
                flow, step, 0, None, time.monotonic() - started, ident or {},
                f"{type(exc).__name__}: {exc}"[:300], started,
            )  # fmt: skip
            answer = None
        else:
            code = None
            if answer.status_code >= 400:
                code = error_code(answer)
            outcome = Outcome(
                flow, step, answer.status_code, code, time.monotonic() - started,
                ident or {}, None if code or answer.ok else answer.text[:300],
                started,
            )  # fmt: skip
        with self._lock:
            self.outcomes.append(outcome)
        return answer, outcome

    # -- flows -----------------------------------------------------------------
    def _send_code(self, http, phone=None, flow="send_code"):
        phone = phone or random_phone("136")
        answer, outcome = self.call(
            http, flow, "send_code", "POST", "/api/v1/codes",
            {"phone": phone},
            json={"channel": "sms", "destination": phone, "purpose": "register"},
        )  # fmt: skip
        return phone, outcome

    def _register(self, http):
        phone = random_phone("135")
        phone, sent = self._send_code(http, phone, flow="register")
        if not sent.acknowledged:
            return
        code = captured_code(self.capture_url, phone)
        if code is None:  # accepted but never delivered: judged by the invariants
            return
        self.call(
            http, "register", "create", "POST", "/api/v1/accounts",
            {"phone": phone},
            json={
                "phone": phone, "code": code, "password": PASSWORD, "name": "负载生",
                "id_type": "resident_id", "id_number": random_resident_id(1995),
            },
            headers={"X-Device-Id": "dev-" + uuid.uuid4().hex},
        )  # fmt: skip

    def _login(self, http):
        account = random.choice(self.accounts)
        device = account["device"]
        answer, outcome = self.call(
            http, "login", "login", "POST", "/api/v1/sessions",
            {"phone": account["phone"]},
            json={"login": account["phone"], "password": account["password"]},
            headers={"X-Device-Id": device},
        )  # fmt: skip
        if outcome.acknowledged:
            token = answer.json()["token"]
            self.call(
                http, "login", "me", "GET", "/api/v1/me",
                {"phone": account["phone"]},
                headers={"Authorization": f"Bearer {token}", "X-Device-Id": device},
            )  # fmt: skip

    def _roster(self, http):
        code, token = self.school
        number = "F" + uuid.uuid4().hex[:12]
        self.call(
            http, "roster", "scim_create", "POST", "/scim/v2/Users",
            {"school_code": code, "user_name": number},
            json=scim_student(number, "花名册生", "负载班"),
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip

    def _vouch(self, http):
        with self._lock:
            job = self.vouch_jobs.pop() if self.vouch_jobs else None
        if job is None:
            return self._send_code(http)
        voucher, share, recovery_id = job
        self.call(
            http, "vouch", "vouch", "POST", f"/api/v1/vouches/{share}",
            {"recovery_id": recovery_id, "voucher_id": voucher["account_id"]},
            headers=voucher["auth"],
        )  # fmt: skip


def burst_sends(gateway_url, phone, total=1000, concurrency=50):
    """``total`` register-code sends to one phone, ``concurrency`` at a time,
    each from its own client address; returns the outcomes."""
    load = Load(gateway_url, None, [], None, [])
    counter = itertools.count()

    def sender():
        http = requests.Session()
        while next(counter) < total:
            load.call(
                http, "burst", "send_code", "POST", "/api/v1/codes",
                {"phone": phone},
                json={"channel": "sms", "destination": phone, "purpose": "register"},
            )  # fmt: skip

    threads = [threading.Thread(target=sender) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    return load, threads


def summary(outcomes):
    """``"N requests: 200×a, 429/code×b, …"`` of a run's outcomes."""
    by_status = {}
    for o in outcomes:
        key = f"{o.status}{'/' + o.code if o.code else ''}"
        by_status[key] = by_status.get(key, 0) + 1
    return f"{len(outcomes)} requests: " + ", ".join(
        f"{k}×{v}" for k, v in sorted(by_status.items())
    )


class ScenarioRun:
    """The load of one fault scenario: the steady flows, and the 1,000-send
    burst to one phone under way when the fault strikes.

        run = ScenarioRun(platform, accounts, school, pending_recoveries)
        ...the fault...
        run.finish(api)            # healthy again, burst done, load stopped
        run.outcomes, run.burst    # for the invariants
    """

    def __init__(self, platform, accounts, school, pending_recoveries):
        self.flows, vouch_jobs = pending_recoveries
        self.load = Load(
            platform.gateway_url, platform.capture_url, accounts, school, vouch_jobs
        ).start(workers=6)
        time.sleep(3)  # steady before the fault
        self.burst_phone = random_phone("133")
        self.burst, self._senders = burst_sends(platform.gateway_url, self.burst_phone)
        time.sleep(0.5)  # the burst is under way when the fault strikes
        self.outcomes = []
        self.recovered_at = None

    def finish(self, api, healthy_within=90):
        from services.common.plumbing.testing import wait_until

        wait_until(
            lambda: api.get("/health").status_code == 200,
            timeout=healthy_within, interval=0.5,
            message="the platform healthy again",
        )  # fmt: skip
        self.recovered_at = time.monotonic()
        for sender in self._senders:
            sender.join(180)
        time.sleep(4)  # the load goes on after the fault
        self.outcomes = self.load.stop()
        return self

    @property
    def everything(self):
        return self.outcomes + self.burst.outcomes
