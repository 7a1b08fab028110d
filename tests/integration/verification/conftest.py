import random

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
def store(databases):
    """A ``VerificationStore`` on this run's verification database."""
    from services.common.plumbing.db import ConnectionPool
    from services.verification.store import VerificationStore

    pool = ConnectionPool(
        databases.uris["verification"], 2, acquire_timeout=5, statement_timeout_ms=5000
    )
    store = VerificationStore(pool)
    yield store
    store.close()
    pool.closeall()


@pytest.fixture
def sql(db_query):
    return db_query("verification")


def code_in(message):
    import re

    return re.search(r"验证码：(\d{6})", message["body"]).group(1)
