"""The registry_sync service's composition root: the school registry.

Entrypoints by area, combined here, each self-contained:
``school_entrypoints.py`` (schools and their API tokens),
``scim_entrypoints.py`` (SCIM Users and Groups; the filter compiler is
``scim_filter.py``), ``verification_entrypoints.py`` (registry
verification, school admin tools, classmates), ``import_entrypoints.py``
(OneRoster imports; the worker is ``import_worker.py`` with its SQL in
``import_store.py``), ``enrollment_entrypoints.py`` (pushed enrolments,
change windows, the current term). What they share is a provider declared
below: ``verifier`` decides every verification outcome, ``keys`` (one set,
``keys.py``) seals and hashes."""

from services.common.plumbing import base
from services.common.plumbing.clock import Clock
from services.common.plumbing.db import Database
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.rpc import ServiceRpc

# Modules, not classes: `nameko run` takes every class with entrypoints in
# this module's namespace for a service of its own.
from services.registry_sync import (
    enrollment_entrypoints,
    import_entrypoints,
    school_entrypoints,
    scim_entrypoints,
    verification_entrypoints,
)
from services.registry_sync.dependencies import (
    ImportRunner,
    KnownSchools,
    RegistryKeys,
    Verifier,
)
from services.registry_sync.store import RegistryStore

__all__ = ["RegistrySyncService"]


class RegistrySyncService(
    school_entrypoints.SchoolEntrypoints,
    scim_entrypoints.ScimEntrypoints,
    verification_entrypoints.VerificationEntrypoints,
    import_entrypoints.ImportEntrypoints,
    enrollment_entrypoints.EnrollmentEntrypoints,
    base.ServiceBase,
):
    name = "registry_sync"

    db = Database(RegistryStore)
    outbox = Outbox()  # relays the events db's stores queue
    clock = Clock()
    keys = RegistryKeys()
    verifier = Verifier()  # the one place an outcome is decided
    known_schools = KnownSchools()  # which school a token named, as a hint
    imports = ImportRunner()
    # Registry verification compares records with the account's own
    # real-name data, which only identity holds.
    identity = ServiceRpc("identity")
