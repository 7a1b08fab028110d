"""SMS pumping against a registration day, through the gateway, on a
platform of its own whose pumping watch judges fast (a 3 s grace, a check
every half second): bench/pumping.py's simulation, small. The pumped
segments are suspended, the school's students are never refused, and ops
see and lift the suspensions over HTTP; the same refusal over RPC."""

import pytest
import requests
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.utils import find_free_port

from bench.pumping import PUMPING_SEGMENTS, RpcChecker, Simulation, simulate
from services.common.contract.errors import Throttled
from services.common.plumbing.testing import wait_until
from tests.e2e.conftest import INTERNAL_TOKEN, launch_platform

FAST_WATCH_ENV = {
    "PUMPING_MIN_VOLUME": "15",
    "PUMPING_GRACE_SECONDS": "3",
    "PUMPING_CHECK_SECONDS": "0.5",
    "PUMPING_WINDOW_SECONDS": "120",
    # Only the watch decides here (bench/pumping.py says why).
    "CODE_PREFIX_SENDS_PER_MINUTE": "100000000",
    "CODE_IP_HOURLY_LIMIT": "100000000",
    "CODE_IP_FAILURES_BEFORE_CAPTCHA": "100000000",
}


@pytest.fixture(scope="module")
def watched_platform(tmp_path_factory, wechat_key):
    yield from launch_platform(
        tmp_path_factory,
        wechat_key,
        extra_env=FAST_WATCH_ENV,
        gateway_port=find_free_port(),
    )


@pytest.fixture(scope="module")
def simulation(watched_platform):
    checker = RpcChecker(watched_platform.amqp_uri)
    try:
        figures = simulate(
            watched_platform.gateway_url,
            watched_platform.capture_url,
            checker,
            Simulation(
                pumping_sends=360,
                pumping_rate=30,
                students=60,
                bursts=3,
                burst_gap=3,
                verify_delay=(0.5, 2.0),
            ),
        )
    finally:
        checker.close()
    print("pumping simulation:", figures)
    return figures


def ops(platform, method, path, token=INTERNAL_TOKEN):
    return requests.request(
        method,
        platform.gateway_url + path,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=15,
    )


def test_pumped_segments_are_suspended_and_no_student_is_refused(
    simulation, watched_platform
):
    assert simulation["real_refused"] == 0, simulation
    assert simulation["real_verified"] >= 0.7 * simulation["real_sent"]
    assert simulation["pumping_sends"] == 360
    # Most of the pumping was refused once its segments were judged.
    assert simulation["pumping_through"] < 360 / 2, simulation
    assert simulation["pumping_refused"].get("sending_suspended", 0) > 0
    listed = ops(watched_platform, "GET", "/api/v1/internal/sms/suspensions")
    assert listed.status_code == 200, listed.text
    suspended = {(s["scope"], s["key"]): s for s in listed.json()["suspensions"]}
    for segment in PUMPING_SEGMENTS:
        item = suspended[("segment", "+86" + segment)]
        assert item["active"] and item["level"] == 1
        assert item["figures"]["verified"] == 0 and item["figures"]["sent"] >= 15
    # The school's network sent many codes, and most were verified.
    assert not [key for key in suspended if key[0] == "network"]
    log = (watched_platform.log_dir / "verification.log").read_text()
    assert "ALERT sms sending suspended for segment +861700012" in log


def test_a_suspended_segment_refuses_over_http_and_rpc_until_lifted(
    simulation, watched_platform
):
    phone = f"{PUMPING_SEGMENTS[0]}9999"
    send = {"channel": "sms", "destination": phone, "purpose": "register"}
    refused = requests.post(
        watched_platform.gateway_url + "/api/v1/codes",
        json=send,
        headers={"X-Forwarded-For": "192.0.2.1"},
        timeout=15,
    )
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["code"] == "sending_suspended" and 1 <= body["retry_after"] <= 300
    assert refused.headers.get("Retry-After")
    with ClusterRpcProxy({"AMQP_URI": watched_platform.amqp_uri}, timeout=15) as rpc:
        with pytest.raises((RemoteError, Throttled)) as raised:
            rpc.verification.issue_code({**send, "destination": "+86" + phone})
        assert "sending_suspended" in str(raised.value)

    listed = ops(watched_platform, "GET", "/api/v1/internal/sms/suspensions").json()
    (item,) = [
        s for s in listed["suspensions"] if s["key"] == "+86" + PUMPING_SEGMENTS[0]
    ]
    path = f"/api/v1/internal/sms/suspensions/{item['id']}/lift"
    assert ops(watched_platform, "POST", path, token=None).status_code == 401
    assert ops(watched_platform, "POST", path, token="wrong").status_code == 401
    lifted = ops(watched_platform, "POST", path)
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    assert lifted.json()["lifted_by"] == "internal_api"
    again = ops(watched_platform, "POST", path)  # idempotent
    assert again.status_code == 200 and again.json()["active"] is False
    missing = ops(
        watched_platform, "POST", "/api/v1/internal/sms/suspensions/999999/lift"
    )
    assert missing.status_code == 404 and missing.json()["code"] == (
        "suspension_not_found"
    )

    def accepted():
        answer = requests.post(
            watched_platform.gateway_url + "/api/v1/codes",
            json=send,
            headers={"X-Forwarded-For": "192.0.2.1"},
            timeout=15,
        )
        return answer.status_code == 202

    # At once on the instance that lifted it (one instance here).
    wait_until(accepted, timeout=5, message="sends to the lifted segment")
    ended = ops(
        watched_platform, "GET", "/api/v1/internal/sms/suspensions?include_ended=true"
    ).json()["suspensions"]
    assert any(s["id"] == item["id"] and not s["active"] for s in ended)
    current = ops(watched_platform, "GET", "/api/v1/internal/sms/suspensions").json()
    assert item["id"] not in [s["id"] for s in current["suspensions"]]
