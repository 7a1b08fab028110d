"""Integration tier: real RabbitMQ (a vhost per test, from Nameko's
``rabbit_config``) and real PostgreSQL (fresh databases per run)."""

import pytest

from services.common.plumbing.testing import TestDatabases, check_infra


@pytest.fixture(scope="session", autouse=True)
def real_infrastructure():
    try:
        check_infra()
    except RuntimeError as exc:  # fail loudly: this tier never skips
        pytest.exit(f"integration tier needs real infrastructure: {exc}", returncode=3)


@pytest.fixture(scope="session")
def databases():
    dbs = TestDatabases().create()
    yield dbs
    dbs.drop()


@pytest.fixture
def make_config(rabbit_config, databases):
    """Config for ``service`` on this test's vhost and this run's database."""
    from services.common.plumbing.testing import service_config

    def make(service, db_service=None, **overrides):
        config = service_config(service)
        config["AMQP_URI"] = rabbit_config["AMQP_URI"]
        uri = databases.uris.get(db_service or service)
        if uri:
            config["DB_URI"] = uri
        config.update(overrides)
        return config

    return make


@pytest.fixture(scope="session")
def capture():
    """The development SMS/email capture server, as its own process."""
    import subprocess
    import sys

    import requests
    from nameko.testing.utils import find_free_port

    from services.common.plumbing.testing import wait_until

    http_port, smtp_port = find_free_port(), find_free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.capture",
            "--http-port",
            str(http_port),
            "--smtp-port",
            str(smtp_port),
        ]
    )
    url = f"http://127.0.0.1:{http_port}"

    def up():
        try:
            return requests.get(f"{url}/api/messages", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(up, timeout=20, message="capture server")

    class Capture:
        base = url
        smtp = smtp_port
        sms_url = f"{url}/api/sms"

        def messages(self, to):
            return requests.get(
                f"{url}/api/messages", params={"to": to}, timeout=5
            ).json()

    yield Capture()
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def db_query(databases):
    """``db_query(service)`` -> a function running SQL on that service's test database."""
    import psycopg2
    import psycopg2.extras

    connections = []

    def for_service(service):
        conn = psycopg2.connect(databases.uris[service])
        conn.autocommit = True
        connections.append(conn)

        def query(statement, params=None):
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else None

        return query

    yield for_service
    for conn in connections:
        conn.close()
