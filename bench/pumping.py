"""SMS pumping against a school's registration day, on the real platform
(issue #24): what the pumping watch (services/verification/pumping.py) lets
through, and whom it wrongly refuses.

Two runs at once through the gateway (each request names its client in
X-Forwarded-For, as behind one load balancer):

* **pumping** — sends to sequential numbers in a few number segments, from
  addresses rotating over many networks, at a steady rate; no code is ever
  verified;
* **registration day** — students of one school, all behind the school's
  network, arrive in bursts; each asks for a ``register`` code, and most
  (``verify_share``) use it after a delay a person needs (read from the
  capture server, used through verification's ``check_code`` RPC, as
  identity does when the student registers).

Figures: pumping sends that got through (202) before their segment was
suspended, pumping sends refused, **real users refused (target 0)**, and
the suspensions ops would see. ``python -m bench.pumping`` runs the
platform's default thresholds (30 s grace, 10-minute window, ~4 minutes);
tests/e2e/test_sms_pumping.py runs the same simulation small and fast.
"""

import argparse
import random
import threading
import time
from dataclasses import dataclass, field

import requests

from bench.harness import bench_platform, emit

__all__ = ["Simulation", "simulate", "RpcChecker", "PUMPING_SEGMENTS"]

# Sequential numbers in these segments (+86 and 7 digits each).
PUMPING_SEGMENTS = ("1700012", "1700013", "1700014")
SCHOOL_NETWORK = "10.20.30"
REAL_PREFIXES = ("138", "139", "150", "151", "186", "187", "135", "136")


@dataclass
class Simulation:
    pumping_sends: int = 1800
    pumping_rate: float = 10.0  # sends a second, over all segments
    students: int = 240
    bursts: int = 4
    burst_gap: float = 30.0  # seconds between bursts
    verify_share: float = 0.85
    verify_delay: tuple = (5.0, 60.0)  # a student types the code within a minute
    seed: int = 2026
    results: dict = field(default_factory=dict)


def _rotating_address(rng):
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _send(http, base, phone, address):
    return http.post(
        f"{base}/api/v1/codes",
        json={"channel": "sms", "destination": phone, "purpose": "register"},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def _pump(base, sim, tally, stop):
    rng = random.Random(sim.seed)
    http = requests.Session()
    interval = 1.0 / sim.pumping_rate
    started = time.monotonic()
    for n in range(sim.pumping_sends):
        if stop.is_set():
            break
        segment = PUMPING_SEGMENTS[n % len(PUMPING_SEGMENTS)]
        phone = f"+86{segment}{n // len(PUMPING_SEGMENTS):04d}"
        answer = _send(http, base, phone, _rotating_address(rng))
        key = "accepted" if answer.status_code == 202 else answer.json().get("code")
        with tally["lock"]:
            tally["pumping"][key] = tally["pumping"].get(key, 0) + 1
            if key == "accepted":
                tally["pumping_last_accepted"] = time.monotonic() - started
        # A steady rate, whatever each answer took.
        time.sleep(max(0.0, started + (n + 1) * interval - time.monotonic()))


def _student(base, capture, rpc_check, sim, rng, tally):
    http = requests.Session()
    phone = f"+86{rng.choice(REAL_PREFIXES)}{rng.randint(0, 99_999_999):08d}"
    address = f"{SCHOOL_NETWORK}.{rng.randint(1, 254)}"
    answer = _send(http, base, phone, address)
    with tally["lock"]:
        tally["real_sent"] += 1
        if answer.status_code != 202:
            tally["real_refused"].append(answer.json().get("code"))
            return
    if rng.random() >= sim.verify_share:
        return  # gave up, or registered another day
    deadline = time.monotonic() + 30
    body = None
    while body is None and time.monotonic() < deadline:
        found = http.get(f"{capture}/api/messages", params={"to": phone}, timeout=10)
        messages = found.json()
        body = messages[0]["body"] if messages else None
        if body is None:
            time.sleep(0.2)
    if body is None:
        with tally["lock"]:
            tally["real_undelivered"] += 1
        return
    code = body.split("验证码：", 1)[1][:6]
    time.sleep(rng.uniform(*sim.verify_delay))
    verified = rpc_check(phone, code, address)
    with tally["lock"]:
        tally["real_verified"] += bool(verified)


def simulate(gateway_url, capture_url, rpc_check, sim):
    """Run both at once; returns the figures. ``rpc_check(phone, code,
    address)`` uses a code the way identity does (True when it verified)."""
    tally = {
        "lock": threading.Lock(),
        "pumping": {},
        "pumping_last_accepted": None,
        "real_sent": 0,
        "real_refused": [],
        "real_verified": 0,
        "real_undelivered": 0,
    }
    stop = threading.Event()
    pump = threading.Thread(target=_pump, args=(gateway_url, sim, tally, stop))
    pump.start()
    rng = random.Random(sim.seed + 1)
    students = []
    per_burst = max(1, sim.students // sim.bursts)
    for burst in range(sim.bursts):
        if burst:
            time.sleep(sim.burst_gap)
        for _ in range(per_burst):
            worker = threading.Thread(
                target=_student,
                args=(
                    gateway_url,
                    capture_url,
                    rpc_check,
                    sim,
                    random.Random(rng.random()),
                    tally,
                ),
            )
            worker.start()
            students.append(worker)
    for worker in students:
        worker.join()
    pump.join()
    pumping = tally["pumping"]
    return {
        "pumping_sends": sum(pumping.values()),
        "pumping_through": pumping.get("accepted", 0),
        "pumping_refused": {k: v for k, v in pumping.items() if k != "accepted"},
        "pumping_last_through_after_s": (
            round(tally["pumping_last_accepted"], 1)
            if tally["pumping_last_accepted"] is not None
            else None
        ),
        "real_sent": tally["real_sent"],
        "real_refused": len(tally["real_refused"]),
        "real_refused_codes": sorted(set(tally["real_refused"])),
        "real_verified": tally["real_verified"],
        "real_undelivered": tally["real_undelivered"],
    }


class RpcChecker:
    """``check_code`` over RabbitMQ, one standalone proxy per thread (they
    are not shared between threads); ``close()`` stops them all."""

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri
        self.local = threading.local()
        self.contexts = []
        self.lock = threading.Lock()

    def __call__(self, phone, code, address):
        from nameko.standalone.rpc import ClusterRpcProxy

        if not hasattr(self.local, "proxy"):
            context = ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, timeout=30)
            self.local.proxy = context.start()
            with self.lock:
                self.contexts.append(context)
        try:
            answer = self.local.proxy.verification.check_code(
                {
                    "destination": phone,
                    "purpose": "register",
                    "code": code,
                    "client_ip": address,
                }
            )
        except Exception:  # a refused code is an answer here, not a crash
            return False
        return bool(answer.get("verified"))

    def close(self):
        with self.lock:
            contexts, self.contexts = self.contexts, []
        for context in contexts:
            context.stop()


def main():
    import eventlet

    eventlet.monkey_patch()  # the students are green threads, as in the tests

    from services.common.plumbing.testing import (
        TestDatabases,
        TestVhost,
        check_infra,
        random_ref,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter the size")
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        help="PUMPING_GRACE_SECONDS for this run (default: the platform's)",
    )
    args = parser.parse_args()
    sim = Simulation()
    if args.quick:
        sim = Simulation(pumping_sends=450, students=60, bursts=2)
    check_infra()
    token = "bench-internal-" + random_ref()
    vhost = TestVhost().create()
    dbs = TestDatabases(run_id=random_ref("benchpump"))
    checker = RpcChecker(vhost.amqp_uri)
    env = {
        "AMQP_URI": vhost.amqp_uri,
        "LOG_LEVEL": "WARNING",
        **dbs.env(),
        # One load balancer in front: X-Forwarded-For names each client.
        "GATEWAY_TRUST_FORWARDED_FOR": "true",
        # The other defences stay out of the way of what is measured here
        # (the pumping run would trip the per-prefix breaker and the
        # students' network its hourly limit): the watch alone decides.
        "CODE_PREFIX_SENDS_PER_MINUTE": "100000000",
        "CODE_IP_HOURLY_LIMIT": "100000000",
        "CODE_IP_FAILURES_BEFORE_CAPTCHA": "100000000",
        "INTERNAL_API_TOKEN": token,
    }
    if args.grace is not None:
        env["PUMPING_GRACE_SECONDS"] = str(args.grace)
    platform = bench_platform(env, "pumping")
    try:
        platform.start(wait=90)
        figures = simulate(platform.gateway_url, platform.capture_url, checker, sim)
        suspensions = requests.get(
            f"{platform.gateway_url}/api/v1/internal/sms/suspensions",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["suspensions"]
        emit(
            {
                "bench": "sms_pumping_simulation",
                "settings": "platform defaults (services/verification/config.yml)"
                + (f", grace {args.grace} s" if args.grace is not None else ""),
                **{
                    k: v
                    for k, v in vars(sim).items()
                    if k not in ("results", "verify_delay")
                },
                **figures,
                "suspensions": [
                    {
                        "scope": item["scope"],
                        "key": item["key"],
                        **item["figures"],
                    }
                    for item in suspensions
                ],
                "target_real_refused": 0,
            }
        )
    finally:
        checker.close()
        platform.stop()
        dbs.drop()
        vhost.delete()


if __name__ == "__main__":
    main()
