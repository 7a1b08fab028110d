"""Helpers shared by the test tiers and the benchmarks (never imported by a
service at run time): throw-away databases and vhosts, config for a service
under test, and waiting for a condition."""

import os
import re
import time
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from services.common.plumbing.config import load_config
from services.common.plumbing.limits import cap_address_space
from services.common.plumbing.migrate import (
    SERVICES_ROOT,
    SERVICES_WITH_DB,
    drop_database,
    ensure_database,
    migrate,
)

__all__ = [
    "PG_ADMIN_URI",
    "RABBIT_MGMT",
    "random_ref",
    "random_client_ip",
    "random_phone",
    "random_resident_id",
    "TestDatabases",
    "TestVhost",
    "service_config",
    "wait_until",
    "check_infra",
]

PG_ADMIN_URI = os.environ.get(
    "TEST_PG_URI", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)
RABBIT_AMQP = os.environ.get("TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
RABBIT_MGMT = os.environ.get("TEST_RABBIT_MGMT", "http://guest:guest@127.0.0.1:15672")


def random_ref(prefix="t"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def random_phone(prefix="137", rng=None):
    """A random mainland mobile number, so test runs never share quotas.
    ``rng``: a ``random.Random`` of the caller's (hypothesis seeds the
    module's own)."""
    import random

    rng = rng or random
    return f"{prefix}{rng.randint(0, 99_999_999):08d}"


def random_school_code():
    """A school code no other test run uses."""
    return "T" + uuid.uuid4().hex[:8].upper()


def random_client_ip(version=6):
    """A random address from a documentation range, never routed, so never
    a real client's: by default one of 2**96 in 2001:db8::/32 (RFC 3849), so
    no two test runs share a per-address counter; ``version=4`` gives one of
    the ~500 in TEST-NET-2/-3 (RFC 5737)."""
    import ipaddress
    import random

    if version == 4:
        return f"{random.choice(('198.51.100', '203.0.113'))}.{random.randint(1, 254)}"
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | random.getrandbits(96)))


def random_resident_id(birth_year=1990, rng=None):
    """A random valid 18-digit resident ID (Nanjing region) born in ``birth_year``."""
    import random

    rng = rng or random
    first17 = (
        f"320102{birth_year}{rng.randint(1, 12):02d}{rng.randint(10, 28)}"
        f"{rng.randint(100, 999)}"
    )
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    return first17 + "10X98765432"[total % 11]


def db_uri(name):
    parts = urlsplit(PG_ADMIN_URI)
    return urlunsplit(parts._replace(path=f"/{name}"))


def check_infra():
    """Raise with a clear message if PostgreSQL or RabbitMQ is unreachable."""
    import psycopg2

    try:
        psycopg2.connect(PG_ADMIN_URI, connect_timeout=5).close()
    except psycopg2.Error as exc:
        raise RuntimeError(f"PostgreSQL unreachable at {PG_ADMIN_URI}: {exc}") from exc
    try:
        requests.get(
            f"{mgmt_base()}/api/overview", auth=mgmt_auth(), timeout=5
        ).raise_for_status()
    except requests.RequestException as exc:
        raise RuntimeError(
            f"RabbitMQ management API unreachable at {mgmt_base()}: {exc} "
            "(run scripts/ensure-infra.sh)"
        ) from exc


class TestDatabases:
    """Fresh, migrated databases for every service, named ``<run>_<service>``."""

    __test__ = False

    def __init__(self, run_id=None, services=SERVICES_WITH_DB):
        self.run_id = run_id or random_ref()
        self.uris = {svc: db_uri(f"{self.run_id}_{svc}") for svc in services}

    def create(self):
        for svc, uri in self.uris.items():
            ensure_database(uri)
            migrate(svc, uri)
        return self

    def drop(self):
        for uri in self.uris.values():
            drop_database(uri)

    def env(self):
        return {f"{svc.upper()}_DB_URI": uri for svc, uri in self.uris.items()}


def mgmt_base():
    parts = urlsplit(RABBIT_MGMT)
    return urlunsplit(
        parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    )


def mgmt_auth():
    parts = urlsplit(RABBIT_MGMT)
    return (parts.username or "guest", parts.password or "guest")


class TestVhost:
    """A RabbitMQ vhost of its own, made and removed through the management API."""

    __test__ = False

    def __init__(self, name=None):
        self.name = name or random_ref("vh")

    def create(self):
        base, auth = mgmt_base(), mgmt_auth()
        requests.put(
            f"{base}/api/vhosts/{quote(self.name, safe='')}", auth=auth, timeout=10
        ).raise_for_status()
        requests.put(
            f"{base}/api/permissions/{quote(self.name, safe='')}/{auth[0]}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            auth=auth,
            timeout=10,
        ).raise_for_status()
        return self

    def delete(self):
        requests.delete(
            f"{mgmt_base()}/api/vhosts/{quote(self.name, safe='')}",
            auth=mgmt_auth(),
            timeout=10,
        )

    @property
    def amqp_uri(self):
        return RABBIT_AMQP.rstrip("/") + "/" + quote(self.name, safe="")


def service_config(service, **overrides):
    """The service's own config.yml, with test overrides applied on top."""
    config = load_config(SERVICES_ROOT / service / "config.yml")
    config.pop("LOGGING", None)  # pytest captures logs its own way
    config.update(overrides)
    return config


SCIM_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_STUDENT_EXT = (
    "urn:student-selfservice:params:scim:schemas:extension:student:2.0:Student"
)


def scim_student(number, name, class_name="一班"):
    """A school's SCIM ``POST /scim/v2/Users`` body for one enrolled student."""
    return {
        "schemas": [SCIM_CORE_USER, SCIM_STUDENT_EXT],
        "userName": number,
        "name": {"formatted": name},
        SCIM_STUDENT_EXT: {"studentNumber": number, "className": class_name},
    }


def captured_messages(capture_url, to):
    """What the development capture server holds for ``to``, newest first."""
    return requests.get(
        f"{capture_url}/api/messages", params={"to": to}, timeout=5
    ).json()


def captured_code(capture_url, to, before=0, timeout=15.0):
    """The code in the newest message to ``to`` once more than ``before``
    have arrived; ``None`` if none arrives within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = captured_messages(capture_url, to)
        if len(found) > before:
            return re.search(r"验证码：(\d{6})", found[0]["body"]).group(1)
        time.sleep(0.1)
    return None


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def process_tree_pss_kib(root_pid):
    """Proportional set size of a process and all its descendants, in KiB:
    what a pod's memory accounting charges for the tree (shared pages of
    forked children counted once, split between them)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def python_probe(code, *args, env=None, timeout=60):
    """Run ``code`` in a fresh interpreter (for process-wide settings such
    as malloc's or rlimits) and parse the last line it prints as JSON."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_under_memory_cap(argv, env, cap_mib, sample_seconds=0.1, timeout=900):
    """Run ``argv`` with its address space capped at ``cap_mib`` (RLIMIT_AS,
    inherited by every process it forks), sampling its process tree's PSS.
    Returns ``(exit code, peak PSS in MiB, seconds)``."""
    import subprocess

    def cap():
        cap_address_space(cap_mib)

    started = time.monotonic()
    process = subprocess.Popen(argv, env=env, preexec_fn=cap)
    peak = 0
    while process.poll() is None:
        if time.monotonic() - started > timeout:
            process.kill()
            raise TimeoutError(f"{argv} ran past {timeout} s")
        peak = max(peak, process_tree_pss_kib(process.pid))
        time.sleep(sample_seconds)
    return process.returncode, peak / 1024, time.monotonic() - started
