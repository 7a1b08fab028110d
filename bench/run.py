"""Run the benchmarks; one JSON line each, with the ratio to the floor
measured in the same run.

    python -m bench.run            # what `make bench` calls
    python -m bench.run --quick    # fewer requests, for a smoke check

Benchmarks:
* ``bare_nameko``   — HTTP → RPC → trivial method, plain Nameko: the floor
  of this hardware and framework (stock Nameko's RPC hop).
* ``project_hop``   — the same HTTP and echo over this project's RPC hop
  (``ServiceRpc`` → ``@rpc``), with ``ratio_to_bare_nameko`` (targets at 32
  clients: ≥ 2.0 with wrk, ≥ 1.4 with the Python client).
* ``floor``         — HTTP → gateway plumbing → RPC → one-row INSERT: the
  floor every product endpoint is compared with (later benchmarks print
  ``ratio_to_floor``); here it prints its own ratio to ``bare_nameko``
  (target with wrk at 32 clients: ≥ 1.6).

Each of these runs under two load generators: the Python client
(``load: python``) and ``wrk`` (``load: wrk``, see ``bench/wrk.py``); under
wrk the three alternate for three rounds and each figure is its median
round. The floor keeps running, and each platform figure under wrk is
divided by a floor measured just before it (``floor_adjacent``;
``ratio_to_run_floor`` is the same figure against the floor of the start).
* ``send_code``     — POST /api/v1/codes on the real platform vs ``floor``.
* ``scim_create_user`` — POST /scim/v2/Users on the real platform vs ``floor``.
  (The registry's import and verification benchmarks: ``bench/registry.py``.)
* ``phone_recovery_flow``, ``reset_methods`` — recovery on the real platform
  (``bench/recovery.py``), the lookup vs ``floor``.
* ``argon2id_hash``, ``register``, ``login`` — password work vs the hash
  rate of this machine measured in the same run (``bench/login.py``).

    python -m bench.run --only login      # just the login/registration part
    python -m bench.run --only send_code  # the floor and send_code only
    python -m bench.run --only scim       # the floor and SCIM POST /Users only
    python -m bench.run --only recovery   # the floor and the recovery benchmarks
"""

import argparse
import time

import psycopg2

from bench.harness import (
    Services,
    bench_platform,
    cpu_seconds,
    emit,
    entrypoint_outcomes,
    listen_port,
    load,
    outcomes_between,
    rss_mb,
    wait_http,
)
from bench.login import cpu_ms_per_request, login_benchmarks
from bench.recovery import RECOVERY_BENCH_ENV, recovery_benchmarks
from bench.wrk import (
    SCIM_CREATE_LUA,
    SEND_CODE_LUA,
    run_wrk,
    send_code_one_network_lua,
    wrk_available,
)
from services.common.plumbing.testing import (
    TestDatabases,
    TestVhost,
    check_infra,
    random_ref,
)

CLIENTS = (1, 32)
# The load comes through one trusted proxy hop: each request names its
# client in X-Forwarded-For. One phone prefix sends everything and
# one_network sends from one address: lift the per-IP and SMS-pumping limits
# (the pumping watch too) and the captcha so the benchmark measures the path
# (bench.cluster too).
LOAD_PATH_ENV = {
    "GATEWAY_TRUST_FORWARDED_FOR": "true",
    "CODE_IP_HOURLY_LIMIT": "100000000",
    "CODE_IP_FAILURES_BEFORE_CAPTCHA": "100000000",
    "CODE_PREFIX_SENDS_PER_MINUTE": "100000000",
    # Never-verified sends from one network are what the pumping watch
    # suspends; bench/pumping.py measures the watch itself.
    "PUMPING_MIN_VOLUME": "1000000000",
    "GATEWAY_MAX_WORKERS": "64",
}
BENCH_INTERNAL_TOKEN = "bench-internal-" + random_ref()


def floor_config(amqp_uri, db_uri, port, max_workers=32):
    return f"""
AMQP_URI: {amqp_uri}
DB_URI: {db_uri}
WEB_SERVER_ADDRESS: 127.0.0.1:{port}
max_workers: {max_workers}
RPC_TIMEOUT_SECONDS: 10
LOGGING:
  version: 1
  root: {{level: WARNING}}
"""


class Floors:
    """The floor services of ``run``, kept running for the platform's
    figures: each wrk figure is divided by a floor measured just before it
    (``adjacent``), not only by the one measured minutes earlier at the
    start. This machine's speed drifts by ±20 % within a run (the same
    send_code CPU per request measured 0.96 and 1.31 ms in two runs), and a
    ratio against a floor from another minute carried that drift."""

    def __init__(self, results, floor_url, stop, quick):
        self.results = results
        self._floor_url = floor_url
        self._stop = stop
        self._quick = quick

    def adjacent(self, label):
        """A wrk floor (32 connections) measured now, before ``label``."""
        result = run_wrk(self._floor_url, 32, seconds=WRK_SECONDS[self._quick])
        emit({"bench": "floor_adjacent", "before": label, **result})
        return result

    def stop(self):
        self._stop()


# The stock hop, this project's hop and the floor under wrk, in turn, this
# many times: each figure is its median round, so a ratio between two of
# them is not one minute's speed against another's.
WRK_FLOOR_ROUNDS = {True: 1, False: 3}  # by --quick


def _alternating_wrk(urls, clients, quick):
    """``{(name, "wrk", clients): the median round, with every round's rps}``"""
    rounds = {name: [] for name in urls}
    for _ in range(WRK_FLOOR_ROUNDS[quick]):
        for name, url in urls.items():
            rounds[name].append(run_wrk(url, clients, seconds=WRK_SECONDS[quick]))
    measured = {}
    for name, each in rounds.items():
        median = sorted(each, key=lambda r: r["rps"])[len(each) // 2]
        measured[(name, "wrk", clients)] = {
            **median,
            "rps_each": [r["rps"] for r in each],
        }
    return measured


def run(quick=False):
    """The floors; the services keep running for ``Floors.adjacent`` until
    ``stop``."""
    check_infra()
    per_client = {1: 200 if quick else 1000, 32: 600 if quick else 4000}
    vhost = TestVhost().create()
    dbs = TestDatabases(run_id=random_ref("bench"), services=("identity",)).create()
    db_uri = dbs.uris["identity"]
    conn = psycopg2.connect(db_uri)
    with conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, note text,"
            " created_at timestamptz DEFAULT now())"
        )
    conn.close()
    bare_port, hop_port, floor_port = (
        listen_port(),
        listen_port(),
        listen_port(),
    )
    services = Services(floor_config(vhost.amqp_uri, db_uri, floor_port))
    bare_config = services.dir / "bare.yml"
    bare_config.write_text(floor_config(vhost.amqp_uri, db_uri, bare_port))
    hop_config = services.dir / "hop.yml"
    hop_config.write_text(floor_config(vhost.amqp_uri, db_uri, hop_port))
    urls = {
        "bare_nameko": f"http://127.0.0.1:{bare_port}/bare",
        "project_hop": f"http://127.0.0.1:{hop_port}/hop",
        "floor": f"http://127.0.0.1:{floor_port}/floor",
    }
    results = {}

    def stop():
        services.stop()
        dbs.drop()
        vhost.delete()

    try:
        services.start("bare_echo", "bench.floor:BareEcho", bare_config)
        services.start("bare_gateway", "bench.floor:BareGateway", bare_config)
        services.start("hop_echo", "bench.floor:HopEcho", hop_config)
        services.start("hop_gateway", "bench.floor:HopGateway", hop_config)
        services.start("floor_store", "bench.floor:FloorStore")
        services.start("floor_gateway", "bench.floor:FloorGateway")
        for url in urls.values():
            wait_http(url, method="POST", data="x")
        loads = [("python", clients) for clients in CLIENTS]
        if wrk_available():
            loads.append(("wrk", 32))
        for generator, clients in loads:
            if generator == "wrk":
                results.update(_alternating_wrk(urls, clients, quick))
            else:
                for name, url in urls.items():
                    results[(name, generator, clients)] = {
                        "load": "python",
                        **load(url, clients, per_client[clients], body="hello"),
                    }
            bare = results[("bare_nameko", generator, clients)]
            emit({"bench": "bare_nameko", "clients": clients, **bare})
            for name, target in (
                ("project_hop", 2.0 if generator == "wrk" else 1.4),
                ("floor", 1.6),
            ):
                emit(
                    {
                        "bench": name,
                        "clients": clients,
                        **results[(name, generator, clients)],
                        "ratio_to_bare_nameko": round(
                            results[(name, generator, clients)]["rps"] / bare["rps"], 3
                        ),
                        "target_at_32": target
                        if (name == "project_hop" or generator == "wrk")
                        else None,
                    }
                )
        emit({"bench": "bench_services_rss", "rss_mb": services.rss()})
    except BaseException:
        stop()
        raise
    return Floors(results, urls["floor"], stop, quick)


def platform_benchmarks(floor_32, quick=False, only=None, floors=None):
    """The real platform: send_code against the floor's 32-client figure,
    logins and registrations against the hash rate, then each service's RSS."""
    vhost = TestVhost().create()
    dbs = TestDatabases(run_id=random_ref("benchp"))
    env = {
        "AMQP_URI": vhost.amqp_uri,
        "LOG_LEVEL": "WARNING",
        **dbs.env(),
        **LOAD_PATH_ENV,
        # The login benchmark reads identity's own hash CPU from its metrics,
        # the send_code curve verification's outcomes.
        "IDENTITY_METRICS_PORT": str(listen_port()),
        "VERIFICATION_METRICS_PORT": str(listen_port()),
        "INTERNAL_API_TOKEN": BENCH_INTERNAL_TOKEN,
        **RECOVERY_BENCH_ENV,
    }
    platform = bench_platform(env, "platform")
    try:
        platform.start(wait=90)
        if only in (None, "send_code"):
            send_code_benchmark(platform, floor_32, quick, floors)
            drain_deliveries(platform)  # SCIM does not pay for the codes' deliveries
        if only in (None, "send_code", "scim"):
            scim_benchmark(platform, floor_32, quick, floors)
        if only in (None, "send_code"):
            send_code_curve(platform, quick)
            delivery_backlog(platform)
        if only in (None, "recovery"):
            recovery_benchmarks(platform, floor_32, BENCH_INTERNAL_TOKEN, quick)
        if only in (None, "login"):
            login_benchmarks(platform, quick=quick)
        # Read as the last load ends, and again at rest: once the requests
        # the last load left queued are done (its 256 connections keep the
        # services busy for seconds after wrk stops) and a few seconds more,
        # as identity hands its hashing buffers back after
        # HASH_MEMORY_IDLE_SECONDS (3) without a hash.
        just_after = platform_rss(platform)
        wait_until_quiet(platform)
        time.sleep(5)
        at_rest = platform_rss(platform)
        emit(
            {
                "bench": "platform_rss",
                "rss_mb": at_rest,
                "rss_mb_as_the_load_ends": just_after,
                "largest_service_mb": largest_service(at_rest),
                "largest_service_mb_as_the_load_ends": largest_service(just_after),
            }
        )
    finally:
        platform.stop()
        dbs.drop()
        vhost.delete()


def platform_rss(platform):
    return {name: rss_mb(proc.pid) for name, proc in platform.processes.items()}


def wait_until_quiet(platform, timeout=60.0):
    """Until the platform's processes use under 2 % of a core for a second."""
    pids = [proc.pid for proc in platform.processes.values()]
    deadline = time.monotonic() + timeout
    used = sum(cpu_seconds(pid) or 0 for pid in pids)
    while time.monotonic() < deadline:
        time.sleep(1)
        now_used = sum(cpu_seconds(pid) or 0 for pid in pids)
        if now_used - used < 0.02:
            return
        used = now_used


def largest_service(rss):
    # The platform's own processes; capture is the test SMTP/SMS sink.
    return max(mb for name, mb in rss.items() if name != "capture")


def send_code_benchmark(platform, floor_32, quick, floors=None):
    """``send_code``: every request from its own client address (a national
    mix); ``send_code_one_network``: all from one address (a school NAT),
    where shared rate rows are hottest — it must show 0 failed."""
    import random

    from services.common.plumbing.testing import random_client_ip

    school_nat = random_client_ip(version=4)
    for name, client_address in (
        ("send_code", random_client_ip),
        ("send_code_one_network", lambda: school_nat),
    ):
        drain_deliveries(platform)
        result = load(
            f"{platform.gateway_url}/api/v1/codes",
            32,
            600 if quick else 4000,
            make_body=lambda: {
                "channel": "sms",
                "purpose": "register",
                # 18x: never one of the wrk scripts' 13x phones (a repeat
                # within the resend cooldown is a refusal).
                "destination": f"18{random.randint(0, 999_999_999):09d}",
            },
            headers={"Content-Type": "application/json"},
            make_headers=lambda address=client_address: {"X-Forwarded-For": address()},
            expect=(202,),
        )
        emit(
            {
                "bench": name,
                "clients": 32,
                **result,
                "ratio_to_floor": round(result["rps"] / floor_32["rps"], 3),
                "p99_over_p50": round(result["p99_ms"] / result["p50_ms"], 2),
                "target": "ratio_to_floor >= 0.5 and p99_over_p50 <= 4"
                + (" and failed == 0" if name.endswith("one_network") else ""),
            }
        )
    if floors is not None:
        drain_deliveries(platform)  # the loads above left theirs queued
        run_floor = floors.results[("floor", "wrk", 32)]
        floor = floors.adjacent("send_code")
        before = entrypoint_outcomes(platform, "verification", "issue_code")
        result, cpu_ms = wrk_with_cpu(platform, "/api/v1/codes", SEND_CODE_LUA, quick)
        outcomes = outcomes_between(
            before, entrypoint_outcomes(platform, "verification", "issue_code")
        )
        emit(
            {
                "bench": "send_code",
                "clients": 32,
                **result,
                "cpu_ms_per_request": cpu_ms,
                "ratio_to_floor": round(result["rps"] / floor["rps"], 3),
                "ratio_to_run_floor": round(result["rps"] / run_floor["rps"], 3),
                "p99_over_p50": round(result["p99_ms"] / result["p50_ms"], 2),
                "issue_code_outcomes": outcomes,
            }
        )
        # The rate above counts sends answered 202; the deliveries behind
        # them lag when both cores are busy. How far, and the rate with every
        # delivery handed to the adapter (the load's sends over the load and
        # the drain after it).
        queued, drain_seconds, _ = drain_deliveries(platform)
        delivered_rate = result["requests"] / (WRK_SECONDS[quick] + drain_seconds)
        floor_one_network = floors.adjacent("send_code_one_network")
        before = entrypoint_outcomes(platform, "verification", "issue_code")
        one_network_result, one_network_cpu = wrk_with_cpu(
            platform, "/api/v1/codes", send_code_one_network_lua(school_nat), quick
        )
        after = entrypoint_outcomes(platform, "verification", "issue_code")
        drain_deliveries(platform)
        emit(
            {
                "bench": "send_code_one_network",
                "clients": 32,
                **one_network_result,
                "cpu_ms_per_request": one_network_cpu,
                "ratio_to_floor": round(
                    one_network_result["rps"] / floor_one_network["rps"], 3
                ),
                "ratio_to_run_floor": round(
                    one_network_result["rps"] / run_floor["rps"], 3
                ),
                "p99_over_p50": round(
                    one_network_result["p99_ms"] / one_network_result["p50_ms"], 2
                ),
                "issue_code_outcomes": outcomes_between(before, after),
            }
        )
        emit(
            {
                "bench": "send_code_delivery_lag",
                "load": "wrk",
                "queued_after_load": queued,
                "drain_seconds": round(drain_seconds, 1),
                "sends_delivered_per_second": round(delivered_rate, 1),
                "ratio_to_floor_delivered": round(delivered_rate / floor["rps"], 3),
            }
        )
        profile_under_wrk(
            platform,
            "send_code",
            f"{platform.gateway_url}/api/v1/codes",
            SEND_CODE_LUA,
            ("verification", "gateway"),
            quick,
        )


WRK_SECONDS = {True: 5, False: 10}  # by --quick


def wrk_with_cpu(platform, path, lua, quick):
    """A 32-connection wrk run of ``path`` and the CPU it cost per request
    in each process (``cpu_ms_per_request``)."""
    return cpu_ms_per_request(
        platform,
        lambda: run_wrk(
            f"{platform.gateway_url}{path}", 32, seconds=WRK_SECONDS[quick], lua=lua
        ),
    )


def profile_under_wrk(platform, label, url, lua, names, quick):
    """With ``BENCH_PROFILE_DIR`` set: a further wrk run of ``url`` sampled
    by py-spy in the processes ``names`` (the sampler's own CPU would skew
    the measured runs), and each one's top frames as ``<label>_profile``."""
    import os
    from pathlib import Path

    from bench.login import profile, top_frames

    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if not profile_dir:
        return
    out = Path(profile_dir) / label
    seconds = 4 if quick else 8
    spies = profile({n: platform.processes[n] for n in names}, seconds, out)
    time.sleep(0.5)
    run_wrk(url, 32, seconds=seconds, lua=lua)
    for spy in spies:
        spy.wait(30)
    for name in names:
        emit(
            {
                "bench": f"{label}_profile",
                "process": name,
                "collapsed_stacks": str(out / f"{name}.txt"),
                "top_inclusive": top_frames(out / f"{name}.txt"),
            }
        )


CURVE_CONNECTIONS = (1, 4, 16, 64, 256)


def send_code_curve(platform, quick):
    """req/s and p99 of ``send_code`` (wrk, a fresh phone and address per
    request) at 1 … 256 connections: where the knee is, and that nothing
    falls over past it (every answer 202: the limits are lifted here)."""
    from bench.wrk import wrk_available

    if not wrk_available():
        raise SystemExit("send_code curve: wrk is missing (make bench installs it)")
    for connections in CURVE_CONNECTIONS:
        drain_deliveries(platform)  # each point pays for its own deliveries only
        before = entrypoint_outcomes(platform, "verification", "issue_code")
        result = run_wrk(
            f"{platform.gateway_url}/api/v1/codes",
            connections,
            seconds=3 if quick else 8,
            lua=SEND_CODE_LUA,
            threads=min(2, connections),
        )
        after = entrypoint_outcomes(platform, "verification", "issue_code")
        emit(
            {
                "bench": "send_code_curve",
                "connections": connections,
                **result,
                # What a non-2xx was: a refusal with its stable code (a 4xx
                # the API documents) or a crash; wrk counts only the status.
                "issue_code_outcomes": outcomes_between(before, after),
            }
        )


def delivery_backlog(platform):
    """``delivery_backlog``: the SMS deliveries the last load (the curve's
    256 connections; each load before it starts on an empty queue) left queued,
    and how long verification takes to hand them all to the adapter. The
    loads send faster than one adapter takes them; a code sent now waits
    behind the queue (deliveries go out oldest first), so the benchmarks
    after this one would wait for it too."""
    queued, seconds, pending = drain_deliveries(platform, must_empty=False)
    emit(
        {
            "bench": "delivery_backlog",
            "queued_after_loads": queued,
            "drain_seconds": round(seconds, 1),
            "deliveries_per_second": round(queued / seconds, 1) if queued else None,
            "left_after_600_s": pending,
        }
    )
    if pending:
        raise SystemExit(f"delivery backlog: {pending} deliveries still queued")


def drain_deliveries(platform, limit_seconds=600, must_empty=True):
    """Wait until verification has handed every queued delivery to the
    adapter; ``(queued at the start, seconds waited, still queued)``. Run
    between loads, so that a load does not pay for the deliveries the one
    before it left queued; a queue still not empty after ``limit_seconds``
    stops the bench (unless ``must_empty`` is false)."""
    import psycopg2

    conn = psycopg2.connect(platform.env["VERIFICATION_DB_URI"])
    conn.autocommit = True
    pending_sql = "SELECT count(*) FROM deliveries WHERE status = 'pending'"
    try:
        with conn.cursor() as cur:
            cur.execute(pending_sql)
            (queued,) = cur.fetchone()
            started = time.perf_counter()
            pending = queued
            while pending and time.perf_counter() - started < limit_seconds:
                time.sleep(0.5)
                cur.execute(pending_sql)
                (pending,) = cur.fetchone()
    finally:
        conn.close()
    if pending and must_empty:
        raise SystemExit(f"delivery queue: {pending} deliveries still queued")
    return queued, time.perf_counter() - started, pending


def scim_benchmark(platform, floor_32, quick, floors=None):
    """``scim_create_user``: POST /scim/v2/Users (a student with a resident ID
    number, sealed and hashed on the way in) from 32 clients, vs the floor."""
    import itertools

    import requests

    from services.common.plumbing.testing import random_resident_id, random_school_code

    code = random_school_code()
    made = requests.post(
        f"{platform.gateway_url}/api/v1/internal/schools",
        json={"code": code, "name": "bench"},
        headers={"Authorization": f"Bearer {BENCH_INTERNAL_TOKEN}"},
        timeout=10,
    )
    made.raise_for_status()
    token = made.json()["api_token"]
    numbers = itertools.count()
    student = (
        "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student"
    )
    result = load(
        f"{platform.gateway_url}/scim/v2/Users",
        32,
        600 if quick else 4000,
        make_body=lambda: {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", student],
            "userName": f"b{next(numbers)}-{random_ref()}",
            "name": {"formatted": "张三"},
            student: {"idType": "resident_id", "idNumber": random_resident_id(2010)},
        },
        headers={
            "Content-Type": "application/scim+json",
            "Authorization": f"Bearer {token}",
        },
        expect=(201,),
    )
    record = {"bench": "scim_create_user", "clients": 32, **result}
    if floor_32 is not None:
        record["ratio_to_floor"] = round(result["rps"] / floor_32["rps"], 3)
    emit(record)
    if floors is not None:  # issue #23's figure: the client off the cores
        floor = floors.adjacent("scim_create_user")
        result, cpu_ms = wrk_with_cpu(
            platform, "/scim/v2/Users", SCIM_CREATE_LUA % {"token": token}, quick
        )
        emit(
            {
                "bench": "scim_create_user",
                "clients": 32,
                **result,
                "cpu_ms_per_request": cpu_ms,
                "ratio_to_floor": round(result["rps"] / floor["rps"], 3),
                "ratio_to_run_floor": round(
                    result["rps"] / floors.results[("floor", "wrk", 32)]["rps"], 3
                ),
            }
        )
        profile_under_wrk(
            platform,
            "scim_create_user",
            f"{platform.gateway_url}/scim/v2/Users",
            SCIM_CREATE_LUA % {"token": token},
            ("registry_sync", "gateway"),
            quick,
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only", choices=("login", "send_code", "scim", "recovery"), default=None
    )
    args = parser.parse_args()
    if args.only == "login":
        platform_benchmarks(None, quick=args.quick, only="login")
        return
    floors = run(quick=args.quick)
    try:
        platform_benchmarks(
            floors.results[("floor", "python", 32)],
            quick=args.quick,
            only=args.only,
            floors=floors if wrk_available() else None,
        )
    finally:
        floors.stop()


if __name__ == "__main__":
    main()
