"""The identity service's composition root: accounts, real-name data, login
names, sessions and devices, profile and authentication-info changes,
deactivation, linked identities. States and transitions:
``account_flows.mermaid``.

Entrypoints by area, combined here, each self-contained:
``registration_entrypoints.py``, ``session_entrypoints.py`` (logins,
sessions, username recovery), ``profile_entrypoints.py`` (the student's own
changes, deactivation, links), ``fact_entrypoints.py`` (roles, facts and
projections other systems send, notices, housekeeping) and
``recovery_entrypoints.py`` (what the recovery service asks of identity).
What several areas share is a provider declared below (``changes``,
``throttles``, ``use_code``) or a pure rule in ``domain.py``.
"""

from nameko.dependency_providers import Config

from services.common.plumbing import base
from services.common.plumbing.clock import Clock
from services.common.plumbing.db import Database
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.rpc import ServiceRpc
from services.common.plumbing.throttle_store import Throttles

# Modules, not classes: `nameko run` takes every class with entrypoints in
# this module's namespace for a service of its own.
from services.identity import (
    fact_entrypoints,
    profile_entrypoints,
    recovery_entrypoints,
    registration_entrypoints,
    session_entrypoints,
)
from services.identity.dependencies import (
    AccountChanges,
    IdentityKeys,
    LinkProviders,
    PasswordHasher,
    VerificationCodes,
)
from services.identity.store import IdentityStore

__all__ = ["IdentityService"]


class IdentityService(
    registration_entrypoints.RegistrationEntrypoints,
    session_entrypoints.SessionEntrypoints,
    profile_entrypoints.ProfileEntrypoints,
    fact_entrypoints.FactEntrypoints,
    recovery_entrypoints.RecoveryEntrypoints,
    base.ServiceBase,
):
    name = "identity"

    db = Database(IdentityStore)
    outbox = Outbox()  # relays the events db's stores queue
    clock = Clock()
    config = Config()
    keys = IdentityKeys()
    hasher = PasswordHasher()
    assertions = LinkProviders()
    # Counted in the caller's transaction: a failed login commits its count.
    throttles = Throttles(alone=False)
    changes = AccountChanges()  # notices, recycled phones, ended sessions
    use_code = VerificationCodes()
    verification = ServiceRpc("verification")
    recovery = ServiceRpc("recovery")
