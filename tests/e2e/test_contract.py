"""The published contract is what the gateway does: schemathesis (every
check, all phases, bounded examples) against the running platform, from a
random client address per run. Zero failures; every endpoint added later is
held to it.

Three runs, so each operation is reached with the credentials it needs: one
with a real student session for the account and admin operations (leaving
out the log-out operations, which would end that session half-way), one
with the internal token for the log-in/log-out and internal operations, and
one with a real school's API token for the school-system operations. A
fourth runs the stateful phase alone along the published OpenAPI links,
which make the credentials they need.
"""

import os
import subprocess
import sys

from devtools.platform import ROOT
from services.common.plumbing.testing import random_client_ip

MAX_EXAMPLES = 40
# Reproducible in `make test`: the same inputs every run, so a failure is a
# change in the code, not a new draw. SCHEMATHESIS_SEED=random explores anew
# (and prints its seed to replay).
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261125")
SESSION_AND_INTERNAL_PATHS = r"^/api/v1/(sessions|internal)"
SCHOOL_SYSTEM_PATHS = r"^/(api/v1/school/|scim/)"


def schemathesis(
    platform, report, *options, env=None, max_examples=MAX_EXAMPLES, seed=SEED
):
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{platform.gateway_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--request-timeout",
        "20",
        "--no-color",
        "--header",
        f"X-Forwarded-For: {random_client_ip()}",
        *([] if seed == "random" else ["--seed", str(seed)]),
        *options,
    ]
    # cwd: schemathesis.toml (what a valid request may be answered) is read there.
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    report.write_text(run.stdout + run.stderr)
    summary = run.stdout.split("Test cases:")[-1]
    tail = "\n".join(run.stdout.splitlines()[-40:])
    assert run.returncode == 0, f"schemathesis failed (report {report}):\n{tail}"
    assert " passed" in summary and "failure" not in summary, tail
    return run.stdout


# The stateless phases for the runs with one fixed credential; the stateful
# phase has its own run (test_stateful_phase_follows_the_links) whose links
# make the credentials they need, and the school run keeps it for SCIM's.
STATELESS = ("--phases", "examples,coverage,fuzzing")


def test_account_operations_with_a_session(platform, student, tmp_path):
    who = student()
    out = schemathesis(
        platform,
        tmp_path / "with-session.txt",
        *STATELESS,
        "--exclude-path-regex",
        f"{SESSION_AND_INTERNAL_PATHS}|{SCHOOL_SYSTEM_PATHS}",
        "--header",
        f"Authorization: Bearer {who['token']}",
        "--header",
        f"X-Device-Id: {who['device']}",
    )
    # The session held for the whole run: no account operation saw only 401s.
    assert "401 Unauthorized" not in out, out


def test_session_and_internal_operations(platform, internal_auth, tmp_path):
    schemathesis(
        platform,
        tmp_path / "sessions-internal.txt",
        *STATELESS,
        "--include-path-regex",
        SESSION_AND_INTERNAL_PATHS,
        "--header",
        f"Authorization: {internal_auth['Authorization']}",
    )


def test_school_system_operations_with_a_school_token(
    platform, api, internal_auth, tmp_path
):
    import uuid

    made = api.post(
        "/api/v1/internal/schools",
        json={"code": "C" + uuid.uuid4().hex[:8].upper(), "name": "契约测试学校"},
        headers=internal_auth,
    )
    assert made.status_code == 201, made.text
    out = schemathesis(
        platform,
        tmp_path / "school-system.txt",
        "--include-path-regex",
        SCHOOL_SYSTEM_PATHS,
        "--header",
        f"Authorization: Bearer {made.json()['api_token']}",
    )
    assert "401 Unauthorized" not in out, out


STATEFUL_EXAMPLES = 100
STATEFUL_ATTEMPTS = 3
# register → log in → use the session; recovery → new phone → vouch.
REQUIRED_LINKS = {"LogIn", "ReadAccount", "SetNewPhone", "Vouch"}
# What the stateful run may touch: the operations its links connect.
STATEFUL_PATHS = (
    r"^/api/v1/(accounts$|sessions|me$|me/inbox$|phone-recoveries|vouches/)"
)


def test_stateful_phase_follows_the_links(platform, school, enrolled, tmp_path):
    """The stateful phase alone, along the published links: register → log
    in → use the session (read the account, list sessions, the inbox, log
    out); start a phone recovery → set the new phone → a classmate opens the
    share link and vouches. The hooks (tests/e2e/schemathesis_hooks.py)
    give the steps the real codes and the enrolled student they need."""
    import json

    requesters = [
        enrolled(school, class_name="状态班", name=name, aged=False)
        for name in ("状态甲", "状态丙", "状态丁")
    ]
    voucher = enrolled(school, class_name="状态班", name="状态乙")
    context = {
        "gateway_url": platform.gateway_url,
        "capture_url": platform.capture_url,
        "requesters": [{key: who[key] for key in
                        ("school_code", "student_number", "name", "phone")}
                       for who in requesters],
        "voucher_auth": voucher["auth"],
    }  # fmt: skip
    followed = set()
    for attempt in range(STATEFUL_ATTEMPTS):
        events = tmp_path / f"stateful-{attempt}.ndjson"
        schemathesis(
            platform,
            tmp_path / f"stateful-{attempt}.txt",
            "--phases",
            "stateful",
            "--include-path-regex",
            STATEFUL_PATHS,
            # A session operation accepts the bearer token *or* the page's
            # cookie (two alternative security requirements). ignored_auth
            # spoils one of them and expects a 401 although the other is
            # still valid — a false alarm here; the runs above keep the check.
            "--exclude-checks",
            "ignored_auth",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(events),
            env={
                "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
                "STATEFUL_CONTEXT": json.dumps(context),
            },
            max_examples=STATEFUL_EXAMPLES,
            # Each attempt explores anew; the seeds stay fixed, so a run
            # is reproducible.
            seed=SEED if SEED == "random" else int(SEED) + attempt,
        )
        followed |= links_followed_to_success(events)
        if REQUIRED_LINKS <= followed:
            break
    # The chains the platform promises were walked end to end, each step a
    # success reached through its link (and every run had zero failures).
    assert REQUIRED_LINKS <= followed, sorted(followed)


def links_followed_to_success(ndjson):
    """Names of the links the stateful phase followed to a 2xx answer."""
    import json

    followed = set()
    for line in ndjson.read_text().splitlines():
        ((kind, event),) = json.loads(line).items()
        if kind != "ScenarioFinished":
            continue
        recorder = event.get("recorder") or {}
        for case_id, case in recorder.get("cases", {}).items():
            transition = case.get("transition")
            answer = (recorder.get("interactions", {}).get(case_id) or {}).get(
                "response"
            ) or {}
            if transition and 200 <= (answer.get("status_code") or 0) < 300:
                # "POST /a -> [201] LogIn -> POST /b": the link's name
                followed.add(transition["id"].split("] ")[1].split(" -> ")[0])
    return followed
