"""End-to-end tier: the platform started as ``make run`` starts it — one
``nameko run`` process per service plus the capture server — on its own
vhost, databases and ports, then driven over HTTP."""

import pytest
from nameko.testing.utils import find_free_port

from devtools.platform import Platform
from services.common.testing import TestDatabases, TestVhost, check_infra


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    try:
        check_infra()
    except RuntimeError as exc:  # fail loudly: this tier never skips
        pytest.exit(f"e2e tier needs real infrastructure: {exc}", returncode=3)
    vhost = TestVhost().create()
    databases = TestDatabases()  # Platform.start() creates and migrates them
    env = {
        "AMQP_URI": vhost.amqp_uri,
        "LOG_LEVEL": "INFO",
        **databases.env(),
        "IDENTITY_METRICS_PORT": str(find_free_port()),
        # A 1 s resend cooldown lets a test use the whole daily quota quickly;
        # the 60 s default is covered by the integration tier.
        "CODE_RESEND_COOLDOWN_SECONDS": "1",
        "CODE_IP_FAILURES_BEFORE_CAPTCHA": "50",
    }
    running = Platform(
        env=env,
        log_dir=tmp_path_factory.mktemp("logs"),
        gateway_address=f"127.0.0.1:{find_free_port()}",
        capture_http_port=find_free_port(),
        capture_smtp_port=find_free_port(),
    )
    try:
        running.start(wait=90)
        yield running
    finally:
        running.stop()
        databases.drop()
        vhost.delete()


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

    return Api()
