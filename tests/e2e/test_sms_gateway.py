"""A code's journey through a real SMS gateway and back as a receipt:
the platform sends through Kannel (Debian's ``kannel``), which talks SMPP to
the SMSC simulator (``devtools.smsc``) the tests steer per phone; Kannel
calls the gateway's receipt route, and the client reads the state at
``GET /api/v1/codes/{code_id}``.

A platform of its own (module scope): its verification sends SMS through
Kannel, not to the capture server the other e2e modules read codes from."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.utils import find_free_port

from devtools.sms_gateway import SmsGatewayStack
from services.common.contract.errors import Forbidden
from services.common.plumbing.testing import wait_until
from services.verification.receipts import receipt_signature
from tests.e2e.conftest import launch_platform
from tests.e2e.test_codes import random_mobile

# The development CODE_HMAC_KEY (services/verification/config.yml): tests
# sign receipts the way the platform does, to forge or replay them.
DEV_CODE_KEY = __import__("base64").b64decode(
    "ZGV2LW9ubHktY29kZS1obWFjLWtleS0zMi1ieXRlcyE="
)


RECEIPT_TOKEN = "test-receipt-push-token"


class HeldAnswers:
    """Kannel's sendsms behind a proxy that can hold Kannel's answer for a
    phone until a condition holds: the operator's receipt then reaches the
    platform before the provider's answer does."""

    def __init__(self, target):
        self.target = target
        self.holds = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                answer = requests.get(
                    proxy.target + "?" + url.query, timeout=10
                )  # Kannel took it (or not) now
                to = parse_qs(url.query).get("to", [""])[0]
                until = proxy.holds.get(to)
                if until is not None:
                    wait_until(until, timeout=20, message="the held receipt")
                data = answer.content
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/sendsms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def sms_stack(tmp_path_factory):
    stack = SmsGatewayStack(workdir=tmp_path_factory.mktemp("kannel")).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def held(sms_stack):
    proxy = HeldAnswers(sms_stack.kannel.sendsms_url)
    yield proxy
    proxy.server.shutdown()


@pytest.fixture(scope="module")
def kannel_platform(tmp_path_factory, wechat_key, sms_stack, held):
    port = find_free_port()
    env = sms_stack.verification_env(
        f"http://127.0.0.1:{port}/api/v1/internal/sms/receipts/kannel"
    )
    env["KANNEL_SENDSMS_URL"] = held.url
    # Kannel down for a few seconds must not exhaust the retries.
    env.update(DELIVERY_MAX_ATTEMPTS="12", DELIVERY_RETRY_BASE_SECONDS="0.2")
    env["SMS_RECEIPT_TOKEN"] = RECEIPT_TOKEN
    yield from launch_platform(
        tmp_path_factory, wechat_key, extra_env=env, gateway_port=port
    )


@pytest.fixture
def http(kannel_platform):
    session = requests.Session()
    base = kannel_platform.gateway_url

    class Http:
        def get(self, path, **kw):
            return session.get(base + path, timeout=15, **kw)

        def post(self, path, **kw):
            return session.post(base + path, timeout=15, **kw)

    return Http()


def send(http, phone):
    answer = http.post(
        "/api/v1/codes",
        json={"channel": "sms", "destination": phone, "purpose": "register"},
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def state_becomes(http, code_id, state, timeout=20):
    def reached():
        answer = http.get(f"/api/v1/codes/{code_id}")
        assert answer.status_code == 200, answer.text
        return answer.json() if answer.json()["state"] == state else None

    return wait_until(reached, timeout=timeout, message=f"code {code_id} {state}")


def test_delivered_code_reaches_the_phone_and_reads_delivered(http, sms_stack):
    phone = random_mobile()
    sent = send(http, phone)
    answer = state_becomes(http, sent["code_id"], "delivered")
    assert answer["channel"] == "sms" and phone not in str(answer)
    (message,) = sms_stack.taken("+86" + phone)
    assert "验证码" in message["text"]  # UCS-2 through SMPP, intact


def test_failed_receipt_reads_failed_and_gives_the_send_back_once(
    http, sms_stack, service_sql_of
):
    phone = random_mobile()
    first = send(http, phone)
    state_becomes(http, first["code_id"], "delivered")
    time.sleep(1.1)  # the e2e resend cooldown is 1 s
    sms_stack.behave("+86" + phone, outcome="fail", repeat=2)
    second = send(http, phone)
    assert second["remaining_today"] == 3
    state_becomes(http, second["code_id"], "failed")
    # Kannel forgets a message after its final report (the simulator's
    # duplicate stops there); a retried or replayed report comes this way.
    delivery_id = service_sql_of(
        "SELECT id FROM deliveries WHERE destination = %s ORDER BY id DESC",
        ("+86" + phone,),
    )[0]["id"]
    for dlr_type in (2, 2, 1):
        replay = http.get(
            "/api/v1/internal/sms/receipts/kannel",
            params={
                "delivery": delivery_id,
                "sig": receipt_signature(DEV_CODE_KEY, delivery_id),
                "type": dlr_type,
                "report": "id:1 sub:001 dlvrd:000 stat:UNDELIV err:001 text:",
            },
        )
        assert replay.status_code == 200 and replay.json() == {"recorded": 0}
    assert http.get(f"/api/v1/codes/{second['code_id']}").json()["state"] == "failed"
    # The failed send given back, once: 3 left after this one, as after the
    # first; a second refund would have given back the delivered one too.
    third = send(http, phone)  # no cooldown either: the failed send is void
    assert third["remaining_today"] == 3


def test_expired_receipt_reads_expired(http, sms_stack):
    phone = random_mobile()
    sms_stack.behave("+86" + phone, outcome="expire", delay=0.3)
    sent = send(http, phone)
    state_becomes(http, sent["code_id"], "expired")


def test_no_receipt_stays_submitted(http, sms_stack):
    phone = random_mobile()
    sms_stack.behave("+86" + phone, outcome="drop")
    sent = send(http, phone)
    state_becomes(http, sent["code_id"], "submitted")
    time.sleep(1)
    assert http.get(f"/api/v1/codes/{sent['code_id']}").json()["state"] == ("submitted")


def test_receipt_before_the_providers_answer_is_kept(
    http, sms_stack, held, service_sql_of
):
    phone = random_mobile()
    destination = "+86" + phone

    def receipt_recorded():
        rows = service_sql_of(
            "SELECT receipt_state FROM deliveries WHERE destination = %s",
            (destination,),
        )
        return rows and rows[0]["receipt_state"] == "delivered"

    held.holds[destination] = receipt_recorded
    sent = send(http, phone)
    state_becomes(http, sent["code_id"], "delivered")
    # The provider's answer, arriving after, did not turn it back to submitted.
    wait_until(
        lambda: (
            service_sql_of(
                "SELECT status FROM deliveries WHERE destination = %s", (destination,)
            )[0]["status"]
            == "sent"
        ),
        message="the provider's answer recorded",
    )
    assert http.get(f"/api/v1/codes/{sent['code_id']}").json()["state"] == ("delivered")
    assert len(sms_stack.taken(destination)) == 1


def test_kannel_down_queues_retries_and_sends_once(http, sms_stack):
    phone = random_mobile()
    sms_stack.kannel.stop_box("smsbox")
    try:
        sent = send(http, phone)
        time.sleep(2)  # several refused attempts
        assert http.get(f"/api/v1/codes/{sent['code_id']}").json()["state"] == (
            "queued"
        )
    finally:
        sms_stack.kannel.start_smsbox()
    state_becomes(http, sent["code_id"], "delivered", timeout=30)
    assert len(sms_stack.taken("+86" + phone)) == 1


def test_forged_receipts_are_refused(http, sms_stack, kannel_platform, service_sql_of):
    phone = random_mobile()
    sms_stack.behave("+86" + phone, outcome="drop")
    sent = send(http, phone)
    state_becomes(http, sent["code_id"], "submitted")
    (row,) = service_sql_of(
        "SELECT id FROM deliveries WHERE destination = %s", ("+86" + phone,)
    )
    delivery_id = row["id"]
    path = "/api/v1/internal/sms/receipts/kannel"
    # Another delivery's signature, a made-up one.
    for sig in (receipt_signature(DEV_CODE_KEY, delivery_id + 1), "0" * 32):
        answer = http.get(path, params={"delivery": delivery_id, "sig": sig, "type": 2})
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "receipt_signature_invalid"
    bad = http.get(path, params={"delivery": "x", "sig": "zz", "type": 1})
    assert bad.status_code == 400 and "Traceback" not in bad.text
    # Over RPC, as anything on the bus could call it: the same refusal.
    with ClusterRpcProxy({"AMQP_URI": kannel_platform.amqp_uri}, timeout=15) as rpc:
        # The refusal comes back as RemoteError, or as the contract's own
        # class once services.common.contract.errors is imported here.
        with pytest.raises((RemoteError, Forbidden)) as refused:
            rpc.verification.record_kannel_receipt(
                {"delivery_id": delivery_id, "signature": "0" * 32, "dlr_type": 1}
            )
        assert "receipt_signature_invalid" in str(refused.value)
    assert http.get(f"/api/v1/codes/{sent['code_id']}").json()["state"] == ("submitted")


def test_aliyun_receipt_push_moves_the_delivery_it_names(
    http, sms_stack, service_sql_of
):
    """Alibaba's SmsReport push, in its documented shape, names the delivery
    by the OutId the send carried (here a delivery Kannel left submitted)."""
    phone = random_mobile()
    sms_stack.behave("+86" + phone, outcome="drop")
    sent = send(http, phone)
    state_becomes(http, sent["code_id"], "submitted")
    (row,) = service_sql_of(
        "SELECT id FROM deliveries WHERE destination = %s", ("+86" + phone,)
    )
    report = {
        "phone_number": phone[:3] + "****" + phone[-4:],
        "send_time": "2026-12-06 11:12:13",
        "report_time": "2026-12-06 11:12:20",
        "success": False,
        "err_code": "IB:0008",
        "err_msg": "过期",
        "sms_size": "1",
        "biz_id": "900619746936498440^0",
        "out_id": str(row["id"]),
    }
    path = "/api/v1/internal/sms/receipts/aliyun"
    for token in ("", "wrong"):
        refused = http.post(path, params={"token": token}, json=[report])
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "receipt_token_invalid"
    bad = http.post(path, params={"token": RECEIPT_TOKEN}, json=[{"out_id": "x"}])
    assert bad.status_code == 400 and "Traceback" not in bad.text
    answer = http.post(path, params={"token": RECEIPT_TOKEN}, json=[report])
    assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "成功"}
    state_becomes(http, sent["code_id"], "expired")


def test_an_unknown_or_walked_code_id_is_not_found(http):
    for code_id in ("1-00000000000000000000", "999999999-abcdefabcdefabcdefab"):
        answer = http.get(f"/api/v1/codes/{code_id}")
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "code_not_found"


@pytest.fixture
def service_sql_of(kannel_platform):
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(kannel_platform.env["VERIFICATION_DB_URI"])
    conn.autocommit = True
    # The held-answer proxy's handler threads poll through this connection
    # too, while the test does: one query at a time (green psycopg2 refuses
    # a second one while the first is underway).
    one_at_a_time = threading.Lock()

    def query(statement, params=None):
        with (
            one_at_a_time,
            conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
        ):
            cur.execute(statement, params)
            return cur.fetchall()

    yield query
    conn.close()
