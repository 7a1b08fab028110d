"""What the registry_sync integration tests share: the service running
against the real broker and database, with identity's stand-in answering
the calls it makes, and SQL on its own database."""

import pytest

from services.registry_sync.service import RegistrySyncService
from tests.integration.registry_sync.stand_ins import IdentityStandIn


@pytest.fixture
def registry_container(container_factory, make_config):
    config = make_config("registry_sync")
    container = container_factory(RegistrySyncService, config)
    container.start()
    container_factory(IdentityStandIn, config).start()
    return container


@pytest.fixture
def registry(registry_container):
    """The running registry_sync's config: what an RPC proxy needs."""
    return registry_container.config


@pytest.fixture
def registry_sql(db_query):
    return db_query("registry_sync")
