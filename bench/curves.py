"""How each cost grows as the work grows (issue #23), one JSON line a point:

* ``oneroster_import_curve`` — the real import worker (its own process,
  address space capped at the pod's 448 MiB) on 10k, 100k and 1M students:
  seconds and peak PSS. It must stay linear in time and flat in memory.
* ``registry_verification_curve`` — ``submit_verification`` p50/p99 inside
  the service with 100k, 1M and 5M registry rows (``bench.registry`` in a
  process of its own per size: it monkey-patches for eventlet).
* ``burst_one_phone`` — 1,000 and 10,000 concurrent code sends to one phone
  over two verification instances, real RabbitMQ and PostgreSQL: exactly 5
  are sent, every other one answered ``daily_limit_reached``.

``send_code_curve`` and ``login_curve`` (1 … 256 connections) run with the
platform in ``bench.run``. ``make bench`` runs this module; alone::

    python -m bench.curves [--quick] [--only import|verification|burst]
"""

import argparse
import collections
import json
import subprocess
import sys
import time

from bench.harness import emit
from bench.import_memory import run_import
from bench.registry import roster_zip
from services.common.plumbing.testing import TestDatabases, check_infra, random_ref

IMPORT_SIZES = (10_000, 100_000, 1_000_000)
REGISTRY_SIZES = (100_000, 1_000_000, 5_000_000)
BURSTS = (1_000, 10_000)
POD_CAP_MIB = 448


def import_curve(sizes):
    for students in sizes:
        package = roster_zip(students)
        dbs = TestDatabases(
            run_id=random_ref("benchcurve"), services=("registry_sync",)
        )
        dbs.create()
        try:
            status, progress, peak, seconds = run_import(
                dbs.uris["registry_sync"], package, POD_CAP_MIB, school="BENCHCRV"
            )
        finally:
            dbs.drop()
        if status != "succeeded":
            raise SystemExit(f"import of {students} students: {status} {progress}")
        emit(
            {
                "bench": "oneroster_import_curve",
                "students": students,
                "seconds": round(seconds, 2),
                "students_per_second": round(students / seconds),
                "peak_pss_mib": round(peak, 1),
                "cap_mib": POD_CAP_MIB,
            }
        )


def verification_curve(sizes, samples):
    for rows in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "bench.registry", "--only", "verification",
             "--registry-rows", str(rows), "--samples", str(samples)],
            capture_output=True, text=True, check=True, timeout=1800,
        ).stdout  # fmt: skip
        record = next(
            json.loads(line) for line in out.splitlines() if line.startswith("{")
        )
        emit({**record, "bench": "registry_verification_curve"})


def burst_curve(sizes):
    """Concurrent sends to one phone, cooldown off, through two real
    verification containers: exactly five go out whatever the burst."""
    import eventlet

    eventlet.monkey_patch()
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ServiceRpcProxy

    from services.common.contract.errors import Throttled
    from services.common.plumbing.testing import TestVhost, random_phone, service_config
    from services.verification.service import VerificationService

    vhost = TestVhost().create()
    dbs = TestDatabases(run_id=random_ref("benchburst"), services=("verification",))
    dbs.create()
    config = {
        **service_config("verification"),
        "AMQP_URI": vhost.amqp_uri,
        "DB_URI": dbs.uris["verification"],
        "SMS_HTTP_URL": "http://127.0.0.1:9/unused",  # nothing is delivered here
        "DELIVERY_POLL_SECONDS": 3600,
        # A delivery that fails its last attempt gives its send back (the
        # user never got the code): with retries 2, 4 and 8 s apart, the
        # 10,000 burst (~25 s) saw five more codes go out 15 s in. The
        # first retry an hour away keeps every send counted here.
        "DELIVERY_RETRY_BASE_SECONDS": 3600,
        # service_config's keys are the shipped development keys, which a
        # service refuses unless told it runs on a development machine.
        "DEVELOPMENT_MODE": "true",
    }
    config["VERIFICATION_LIMITS"] = {
        **config["VERIFICATION_LIMITS"],
        "resend_cooldown": 0,
        "hourly_limit_per_ip": 10**8,
        "ip_failures_before_captcha": 10**8,
        "prefix_sends_per_minute": 10**8,
    }
    containers = [ServiceContainer(VerificationService, config) for _ in range(2)]
    for container in containers:
        container.start()
    per_proxy = 20
    try:
        for burst in sizes:
            phone, outcomes = random_phone(), collections.Counter()

            def client(batch, phone=phone, outcomes=outcomes):
                with ServiceRpcProxy("verification", config) as proxy:
                    replies = [
                        proxy.issue_code.call_async(
                            {
                                "channel": "sms",
                                "destination": phone,
                                "purpose": "register",
                                "client_ip": f"10.{batch % 250}.{i}.1",
                            }
                        )  # fmt: skip
                        for i in range(per_proxy)
                    ]
                    for reply in replies:
                        try:
                            reply.result()
                            outcomes["sent"] += 1
                        except Throttled as refusal:
                            outcomes[refusal.code] += 1

            started = time.monotonic()
            pool = eventlet.GreenPool(500)
            for batch in range(burst // per_proxy):
                pool.spawn(client, batch)
            pool.waitall()
            seconds = time.monotonic() - started
            emit(
                {
                    "bench": "burst_one_phone",
                    "concurrent": burst,
                    "outcomes": dict(outcomes),
                    "sent": outcomes["sent"],
                    "seconds": round(seconds, 2),
                    "sends_per_second": round(burst / seconds),
                    "exactly_five": outcomes
                    == {"sent": 5, "daily_limit_reached": burst - 5},
                }
            )
    finally:
        for container in containers:
            container.stop()
        dbs.drop()
        vhost.delete()


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.curves")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("import", "verification", "burst"))
    args = parser.parse_args()
    check_infra()
    if args.only in (None, "import"):
        import_curve(IMPORT_SIZES[:2] if args.quick else IMPORT_SIZES)
    if args.only in (None, "verification"):
        verification_curve(REGISTRY_SIZES[:2] if args.quick else REGISTRY_SIZES,
                           200 if args.quick else 1000)  # fmt: skip
    if args.only in (None, "burst"):
        burst_curve(BURSTS[:1] if args.quick else BURSTS)


if __name__ == "__main__":
    main()
