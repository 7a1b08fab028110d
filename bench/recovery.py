"""Recovery benchmarks on the real platform (issue #10), one JSON line each:

* ``phone_recovery_flow`` — whole forgot-phone flows per second with 8
  concurrent flows: identity match → a ``recover_phone`` code to the new
  phone (read from the capture server) → new phone + new password → two
  classmates vouch → completed. Students are registered and verified
  beforehand (not timed). Per-step p50/p99 beside it.
* ``reset_methods`` — ``GET /api/v1/password-resets/methods`` at 32
  clients, half known logins and half unknown, vs the floor's 32-client
  figure of the same run (``ratio_to_floor``). The platform runs with the
  answer floor at 0 here: in production ``ANSWER_FLOOR_MS`` (120) holds
  every answer on purpose, which caps a client at ~8 asks a second
  whatever the path costs; the figure shows the path's own cost.
"""

import random
import re
import statistics
import threading
import time
import uuid

import requests

from bench.harness import emit, fresh_resident_id, load
from services.common.plumbing.testing import (
    random_phone,
    random_school_code,
    scim_student,
)

PASSWORD = "bench password 2026"

# What the bench platform needs from recovery: caps and ages out of the way,
# and the answer floor off (see the module docstring).
RECOVERY_BENCH_ENV = {
    "VOUCH_DAILY_CAP": "1000000",
    "VOUCH_TERM_CAP": "1000000",
    "VOUCHER_MIN_AGE_DAYS": "0",
    "VOUCH_ATTEMPTS_LIMIT": "1000000",
    "RECOVERY_MATCH_IP_LIMIT": "100000000",
    "RECOVERY_ANSWER_FLOOR_MS": "0",
}


class _Client:
    def __init__(self, platform, internal_token):
        self.base = platform.gateway_url
        self.capture = platform.capture_url
        self.http = requests.Session()
        self.internal = {"Authorization": f"Bearer {internal_token}"}

    def post(self, path, **kw):
        return self.http.post(self.base + path, timeout=30, **kw)

    def get(self, path, **kw):
        return self.http.get(self.base + path, timeout=30, **kw)

    def code(self, phone, purpose):
        before = len(self.messages(phone))
        for _ in range(20):
            sent = self.post(
                "/api/v1/codes",
                json={"channel": "sms", "destination": phone, "purpose": purpose},
                headers={"X-Forwarded-For": f"198.51.100.{random.randint(1, 254)}"},
            )
            if sent.status_code == 202:
                break
            time.sleep(0.5)
        sent.raise_for_status()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self.messages(phone)
            if len(found) > before:
                return re.search(r"验证码：(\d{6})", found[0]["body"]).group(1)
            time.sleep(0.02)
        raise RuntimeError(f"no {purpose} code for {phone}")

    def messages(self, to):
        return self.http.get(
            f"{self.capture}/api/messages", params={"to": to}, timeout=10
        ).json()


def _enrolled_students(client, school, token, count, class_name="一班"):
    """``count`` registered, pushed and verified students of ``school``."""
    made = []
    for _ in range(count):
        phone = random_phone("158")
        name = "测试" + random.choice("甲乙丙丁戊己庚辛")
        number = "B" + uuid.uuid4().hex[:10]
        device = "bench-" + uuid.uuid4().hex
        created = client.post(
            "/api/v1/accounts",
            json={
                "phone": phone,
                "code": client.code(phone, "register"),
                "password": PASSWORD,
                "name": name,
                "id_type": "resident_id",
                "id_number": fresh_resident_id(),
            },
            headers={"X-Device-Id": device},
        )
        created.raise_for_status()
        session = client.post(
            "/api/v1/sessions",
            json={"login": phone, "password": PASSWORD},
            headers={"X-Device-Id": device},
        )
        session.raise_for_status()
        auth = {
            "Authorization": f"Bearer {session.json()['token']}",
            "X-Device-Id": device,
        }
        client.post(
            "/scim/v2/Users",
            json=scim_student(number, name, class_name),
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
        verified = client.post(
            "/api/v1/me/registry-verification",
            json={"school_code": school, "student_number": number, "name": name},
            headers=auth,
        )
        assert verified.json()["status"] == "passed", verified.text
        made.append({"phone": phone, "name": name, "number": number, "auth": auth})
    # identity learns each result by event: wait until the last one has.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get("/api/v1/me", headers=made[-1]["auth"]).json()["student_number"]:
            break
        time.sleep(0.1)
    return made


def _one_flow(client, school, who, vouchers, steps):
    def step(name, fn):
        started = time.perf_counter()
        answer = fn()
        steps.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return answer

    started = step(
        "match",
        lambda: client.post(
            "/api/v1/phone-recoveries",
            json={
                "school_code": school,
                "student_number": who["number"],
                "name": who["name"],
            },  # fmt: skip
        ),
    )
    started.raise_for_status()
    flow = started.json()
    new_phone = random_phone("159")
    code = step("new_phone_code", lambda: client.code(new_phone, "recover_phone"))
    link = step(
        "new_phone",
        lambda: client.post(
            f"/api/v1/phone-recoveries/{flow['recovery_id']}/new-phone",
            json={
                "old_phone": who["phone"],
                "new_phone": new_phone,
                "code": code,
                "new_password": "bench new password 1",
            },  # fmt: skip
            headers={"X-Recovery-Token": flow["recovery_token"]},
        ),
    )
    link.raise_for_status()
    share = link.json()["share_token"]
    last = None
    for index, voucher in enumerate(vouchers):
        last = step(
            f"vouch_{index + 1}",
            lambda voucher=voucher: client.post(
                f"/api/v1/vouches/{share}", headers=voucher["auth"]
            ),
        )
        last.raise_for_status()
    if last.json()["status"] != "completed":
        raise RuntimeError(f"flow not completed: {last.text}")


def recovery_benchmarks(platform, floor_32, internal_token, quick=False):
    client = _Client(platform, internal_token)
    school = random_school_code()
    onboarded = client.post(
        "/api/v1/internal/schools",
        json={"code": school, "name": "bench"},
        headers=client.internal,
    )
    onboarded.raise_for_status()
    token = onboarded.json()["api_token"]
    concurrent, per_thread = 8, (2 if quick else 5)
    vouchers = _enrolled_students(client, school, token, 2)
    requesters = _enrolled_students(client, school, token, concurrent * per_thread)

    steps, failures = {}, []
    lock = threading.Lock()
    queue = list(requesters)
    barrier = threading.Barrier(concurrent + 1)

    def worker():
        mine = _Client(platform, internal_token)
        barrier.wait()
        local = {}
        while True:
            with lock:
                if not queue:
                    break
                who = queue.pop()
            try:
                _one_flow(mine, school, who, vouchers, local)
            except Exception as exc:  # counted, reported
                with lock:
                    failures.append(repr(exc)[:200])
        with lock:
            for name, values in local.items():
                steps.setdefault(name, []).extend(values)

    threads = [threading.Thread(target=worker) for _ in range(concurrent)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    done = len(requesters) - len(failures)

    def pct(values, p):
        values = sorted(values)
        return round(values[min(len(values) - 1, int(len(values) * p))], 1)

    emit(
        {
            "bench": "phone_recovery_flow",
            "concurrent_flows": concurrent,
            "flows": done,
            "failed": len(failures),
            "failures": failures[:3],
            "flows_per_second": round(done / wall, 2),
            "flow_mean_s": round(wall * concurrent / max(done, 1), 2),
            "steps_ms": {
                name: {"p50": round(statistics.median(v), 1), "p99": pct(v, 0.99)}
                for name, v in sorted(steps.items())
            },
        }
    )

    known = [who["phone"] for who in requesters]

    def url():
        login = random.choice(known) if random.random() < 0.5 else random_phone("135")
        return f"{platform.gateway_url}/api/v1/password-resets/methods?login={login}"

    result = load(
        None, 32, 600 if quick else 4000, method="GET", make_url=url, expect=(200,)
    )
    emit(
        {
            "bench": "reset_methods",
            "clients": 32,
            **result,
            "ratio_to_floor": round(result["rps"] / floor_32["rps"], 3)
            if floor_32
            else None,
            "answer_floor_ms": 0,
        }
    )
