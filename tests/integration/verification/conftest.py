import random

import psycopg2
import psycopg2.extras
import pytest

from services.verification.service import VerificationService


def random_phone():
    return f"+86139{random.randint(0, 99_999_999):08d}"


@pytest.fixture
def verification_config(make_config, capture):
    def make(limits=None, **overrides):
        config = make_config(
            "verification",
            SMS_HTTP_URL=capture.sms_url,
            SMTP_PORT=capture.smtp,
            DELIVERY_POLL_SECONDS=0.1,
            OUTBOX_POLL_SECONDS=0.2,
            **overrides,
        )
        config["VERIFICATION_LIMITS"] = {
            **config["VERIFICATION_LIMITS"],
            **(limits or {}),
        }
        return config

    return make


@pytest.fixture
def start_verification(container_factory, verification_config):
    def start(instances=1, limits=None, **overrides):
        config = verification_config(limits, **overrides)
        containers = [
            container_factory(VerificationService, config) for _ in range(instances)
        ]
        for container in containers:
            container.start()
        return config, containers

    return start


@pytest.fixture
def sql(databases):
    conn = psycopg2.connect(databases.uris["verification"])
    conn.autocommit = True

    def query(statement, params=None):
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    yield query
    conn.close()


def code_in(message):
    import re

    return re.search(r"验证码：(\d{6})", message["body"]).group(1)
