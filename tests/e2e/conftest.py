"""End-to-end tier: the platform started as ``make run`` starts it — one
``nameko run`` process per service plus the capture server — on its own
vhost, databases and ports, then driven over HTTP."""

import base64
import re
import time
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from nameko.standalone.events import event_dispatcher
from nameko.testing.utils import find_free_port

from devtools.platform import Platform
from services.common.contract.events import new_envelope
from services.common.plumbing.testing import (
    TestDatabases,
    TestVhost,
    check_infra,
    random_phone,
    random_resident_id,
    random_school_code,
    scim_student,
    wait_until,
)

INTERNAL_TOKEN = "e2e-internal-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def wechat_key():
    """The test's own "WeChat": a key pair whose public half the platform trusts."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def platform_env(wechat_key):
    """The environment the e2e platform runs with (the fault tier's too)."""
    return {
        "LOG_LEVEL": "INFO",
        "IDENTITY_METRICS_PORT": str(find_free_port()),
        # A 1 s resend cooldown lets a test use the whole daily quota quickly;
        # the 60 s default is covered by the integration tier.
        "CODE_RESEND_COOLDOWN_SECONDS": "1",
        "CODE_IP_FAILURES_BEFORE_CAPTCHA": "50",
        # Every e2e request comes from 127.0.0.1; the per-IP hourly limit is
        # covered by the integration tier.
        "CODE_IP_HOURLY_LIMIT": "1000",
        # Most codes the tests ask for are never used, all from loopback: the
        # pumping watch would rightly suspend 127.0.0.0/24. It is judged in
        # test_sms_pumping.py's platform of its own.
        "PUMPING_MIN_VOLUME": "1000000000",
        # As behind one load balancer: the tests speak for many client
        # addresses by sending X-Forwarded-For, the last entry counts.
        "GATEWAY_TRUST_FORWARDED_FOR": "true",
        "GATEWAY_TRUSTED_PROXY_HOPS": "1",
        # Long enough that only the sessions_revoked broadcast can explain
        # a revoked token being refused at once.
        "SESSION_CACHE_SECONDS": "600",
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        # Recovery: the timing test asks one target 20 times and the
        # throttle test 26; the cap tests seed their counters to these.
        "RECOVERY_MATCH_TARGET_LIMIT": "25",
        # Every OneRoster import here reads, checks and stages its rows in
        # several chunks (large files do; the sample sets are small).
        "IMPORT_CHUNK_ROWS": "2",
        # A delivery held by an instance that is killed (scale-out and fault
        # tiers) is taken over by another after this lease, not 60 s.
        "DELIVERY_LEASE_SECONDS": "5",
        "VOUCH_DAILY_CAP": "10",
        # A duplicate-ID move's dispute window ends within a second of a
        # test moving it into the past.
        "RECOVERY_HOUSEKEEPING_SECONDS": "1",
        "VOUCH_TERM_CAP": "10",
        "LINK_WECHAT_PUBLIC_KEY_B64": base64.b64encode(
            wechat_key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        ).decode(),
        "LINK_WECHAT_ISSUER": "https://open.weixin.qq.com",
    }


def launch_platform(
    tmp_path_factory, wechat_key, instances=None, extra_env=None, gateway_port=None
):
    """Start a platform on its own vhost, databases and ports; yields it
    running and drops everything it made afterwards. ``gateway_port``: for
    settings that must name the gateway's address before it starts."""
    try:
        check_infra()
    except RuntimeError as exc:  # fail loudly: this tier never skips
        pytest.exit(f"e2e tier needs real infrastructure: {exc}", returncode=3)
    vhost = TestVhost().create()
    databases = TestDatabases()  # Platform.start() creates and migrates them
    env = {
        "AMQP_URI": vhost.amqp_uri,
        **databases.env(),
        **platform_env(wechat_key),
        **(extra_env or {}),
    }
    running = Platform(
        env=env,
        log_dir=tmp_path_factory.mktemp("logs"),
        gateway_address=f"127.0.0.1:{gateway_port or find_free_port()}",
        capture_http_port=find_free_port(),
        capture_smtp_port=find_free_port(),
        instances=instances,
    )
    try:
        running.start(wait=90)
        running.amqp_uri = vhost.amqp_uri
        running.vhost = vhost
        yield running
    finally:
        running.stop()
        databases.drop()
        vhost.delete()


@pytest.fixture(scope="session")
def platform(tmp_path_factory, wechat_key):
    yield from launch_platform(tmp_path_factory, wechat_key)


@pytest.fixture
def api(platform):
    import requests

    session = requests.Session()
    session.headers["Accept-Language"] = "zh-CN"
    base = platform.gateway_url

    class Api:
        url = base

        def get(self, path, **kw):
            return session.get(base + path, timeout=15, **kw)

        def post(self, path, **kw):
            return session.post(base + path, timeout=15, **kw)

        def put(self, path, **kw):
            return session.put(base + path, timeout=15, **kw)

        def delete(self, path, **kw):
            return session.delete(base + path, timeout=15, **kw)

        def patch(self, path, **kw):
            return session.patch(base + path, timeout=15, **kw)

        def request(self, method, path, **kw):
            return session.request(method, base + path, timeout=15, **kw)

    return Api()


# -- helpers shared by the account tests --------------------------------------


@pytest.fixture
def inbox(platform):
    """``inbox.code(to)``: the newest code sent to a phone or address;
    ``inbox.captcha(captcha_id)``: a captcha's text (development capture)."""

    class Inbox:
        def messages(self, to):
            return requests.get(
                f"{platform.capture_url}/api/messages", params={"to": to}, timeout=5
            ).json()

        def wait_for_new(self, to, before):
            def newer():
                found = self.messages(to)
                return found[0] if len(found) > before else None

            return wait_until(newer, timeout=15, message=f"a message to {to}")

        def code(self, to, before):
            body = self.wait_for_new(to, before)["body"]
            return re.search(r"验证码：(\d{6})", body).group(1)

        def captcha(self, captcha_id):
            return wait_until(
                lambda: self.messages(captcha_id), message="captcha text"
            )[0]["body"]

    return Inbox()


@pytest.fixture
def codes(api, inbox):
    """``codes(purpose, to)``: ask for a code and read it from the capture server."""

    def get(purpose, to, channel=None):
        channel = channel or ("email" if "@" in to else "sms")
        before = len(inbox.messages(to))
        for _ in range(5):
            answer = api.post(
                "/api/v1/codes",
                json={"channel": channel, "destination": to, "purpose": purpose},
            )
            if answer.status_code == 429 and answer.json()["code"] == "resend_too_soon":
                time.sleep(answer.json()["retry_after"])
                continue
            assert answer.status_code == 202, answer.text
            return inbox.code(to, before)
        raise AssertionError("could not get a code")

    return get


@pytest.fixture
def student(api, codes):
    """``student()`` registers a fresh account by phone and logs it in on its
    registration device; returns a dict with what the test needs."""

    def make(name="王小明", email=None, year=1990, login=True):
        phone = random_phone()
        device = "dev-" + uuid.uuid4().hex
        body = {
            "phone": phone,
            "code": codes("register", phone),
            "password": "a long enough secret",
            "name": name,
            "id_type": "resident_id",
            "id_number": random_resident_id(year),
        }
        if email:
            body["email"] = email
        for _ in range(3):
            created = api.post(
                "/api/v1/accounts", json=body, headers={"X-Device-Id": device}
            )
            if created.status_code != 409:
                break
            # A random ID number another test's account already holds (one
            # of ~200k per birth year): refused before the code is used, so
            # the same code registers a fresh number.
            assert created.json()["code"] == "id_already_registered", created.text
            body["id_number"] = random_resident_id(year)
        assert created.status_code == 201, created.text
        who = {**body, **created.json(), "device": device}
        if login:
            session = api.post(
                "/api/v1/sessions",
                json={"login": phone, "password": body["password"]},
                headers={"X-Device-Id": device},
            )
            assert session.status_code == 201, session.text
            who["token"] = session.json()["token"]
            who["auth"] = {
                "Authorization": f"Bearer {who['token']}",
                "X-Device-Id": device,
            }
        return who

    return make


@pytest.fixture
def publish(platform):
    """``publish(source, event_type, payload)`` as another system would."""
    dispatch = event_dispatcher({"AMQP_URI": platform.amqp_uri})

    def send(source, event_type, payload):
        envelope = new_envelope(source, event_type, payload)
        dispatch(source, event_type, envelope)
        return envelope["event_id"]

    return send


@pytest.fixture
def rpc(platform):
    """The platform's services over RabbitMQ RPC, as another service (or an
    attacker on the bus's client side) calls them: ``rpc.registry_sync.…``."""
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy({"AMQP_URI": platform.amqp_uri}, timeout=15) as proxy:
        yield proxy


@pytest.fixture
def handled(platform):
    """``handled(event_id)``: wait until a service's handler recorded the event."""
    import psycopg2

    def wait(event_id, service="identity"):
        conn = psycopg2.connect(platform.env[f"{service.upper()}_DB_URI"])
        conn.autocommit = True
        try:

            def seen():
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT 1 FROM processed_events WHERE event_id = %s",
                        (event_id,),
                    )
                    return cur.fetchone() is not None

            wait_until(seen, message=f"event {event_id} handled by {service}")
        finally:
            conn.close()

    return wait


@pytest.fixture
def service_sql(platform):
    """``service_sql(service, statement, params)``: rows from a service's database."""
    import psycopg2
    import psycopg2.extras

    connections = {}

    def query(service, statement, params=None):
        if service not in connections:
            conn = psycopg2.connect(platform.env[f"{service.upper()}_DB_URI"])
            conn.autocommit = True
            connections[service] = conn
        with connections[service].cursor(
            cursor_factory=psycopg2.extras.RealDictCursor
        ) as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    yield query
    for conn in connections.values():
        conn.close()


@pytest.fixture
def platform_logs(platform):
    """The text of every service log of the running platform so far."""

    def read():
        return {
            path.stem: path.read_text(errors="replace")
            for path in platform.log_dir.glob("*.log")
        }

    return read


@pytest.fixture
def internal_auth():
    """Headers of another platform system (wallet, courses) on /api/v1/internal."""
    return {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@pytest.fixture
def onboard(api, internal_auth):
    def make(code=None, name="测试学校"):
        code = code or random_school_code()
        made = api.post(
            "/api/v1/internal/schools",
            json={"code": code, "name": name, "region": "北京"},
            headers=internal_auth,
        )
        assert made.status_code == 201, made.text
        assert made.json()["code"] == code
        return code, made.json()["api_token"]

    return make


@pytest.fixture
def school(onboard):
    """A freshly onboarded school: ``(code, api token)``."""
    return onboard()


@pytest.fixture
def staff(api, internal_auth, student):
    """``staff("reviewer")``: a fresh account granted a staff role, logged in."""

    def make(*roles):
        who = student(name="审核员")
        granted = api.put(
            f"/api/v1/internal/accounts/{who['account_id']}/roles",
            json={"roles": [{"role": role} for role in roles]},
            headers=internal_auth,
        )
        assert granted.status_code == 200, granted.text
        return who

    return make


# -- enrolled students (recovery and the browser tier) ----------------------------


@pytest.fixture
def age(service_sql):
    """``age(account_id, days=30, account=True, verification=True)``: move an
    account's creation and/or its registry verification back in time (a
    voucher must not be new)."""

    def move(account_id, days=30, account=True, verification=True):
        if account:
            service_sql(
                "identity",
                "UPDATE accounts SET created_at = created_at - %s * interval '1 day'"
                " WHERE id = %s",
                (days, account_id),
            )
        if verification:
            service_sql(
                "registry_sync",
                "UPDATE verifications SET verified_since = verified_since"
                " - %s * interval '1 day' WHERE account_id = %s",
                (days, account_id),
            )

    return move


@pytest.fixture
def enrolled(api, student, age):
    """``enrolled(school, class_name, name, aged=True)``: a registered account,
    pushed by its school over SCIM, registry-verified, identity told;
    ``aged`` moves its creation and verification 30 days back."""

    def make(school, class_name="一班", name="王小明", email=None, aged=True):
        code, token = school
        number = "S" + uuid.uuid4().hex[:10]
        who = student(name=name, email=email)
        pushed = api.post(
            "/scim/v2/Users",
            json=scim_student(number, name, class_name),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert pushed.status_code == 201, pushed.text
        answer = api.post(
            "/api/v1/me/registry-verification",
            json={"school_code": code, "student_number": number, "name": name},
            headers=who["auth"],
        )
        assert answer.json()["status"] == "passed", answer.text
        wait_until(
            lambda: (
                api.get("/api/v1/me", headers=who["auth"]).json()["student_number"]
                == number
            ),
            message="identity learns the registry result",
        )
        if aged:
            age(who["account_id"])
        return {**who, "school_code": code, "student_number": number}

    return make
