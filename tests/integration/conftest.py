"""Integration tier: real RabbitMQ (a vhost per test, from Nameko's
``rabbit_config``) and real PostgreSQL (fresh databases per run)."""

import pytest

from services.common.testing import TestDatabases, check_infra


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
    from services.common.testing import service_config

    def make(service, db_service=None, **overrides):
        config = service_config(service)
        config["AMQP_URI"] = rabbit_config["AMQP_URI"]
        uri = databases.uris.get(db_service or service)
        if uri:
            config["DB_URI"] = uri
        config.update(overrides)
        return config

    return make
