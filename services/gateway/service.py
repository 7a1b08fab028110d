"""The gateway's composition root: the platform's only HTTP surface. It keeps
no state of its own; every answer comes from a back-end service over RPC
with a deadline.

One mixin per surface, each with its schemas beside it (``<surface>.py`` and
``<surface>_schemas.py``); what they share is a dependency provider declared
here (``principal``, ``school_auth``, the RPC proxies) or the HTTP core
(``http.py``: routes, bodies, the status of a refusal, error renderers).

    apps       student apps: codes, accounts, sessions, profile, registry
    recovery   forgot phone, vouching, password reset, duplicate ID, inbox
    school     school systems: rosters, enrolments, change windows
    scim       school systems: SCIM 2.0 Users and Groups
    admin      school admins and reviewers
    internal   ops and platform systems: schools, roles, facts, health, docs
    pages      the web pages
"""

from nameko.dependency_providers import Config

from services.common.contract.vocabulary import BACKEND_SERVICES
from services.common.plumbing.config import KeyGuard
from services.common.plumbing.context import RequestContext
from services.common.plumbing.metrics import Metrics
from services.common.plumbing.rpc import ServiceRpc

# Modules, not classes: `nameko run` takes every class with entrypoints in
# this module's namespace for a service of its own.
from services.gateway import admin, apps, auth, internal, pages, recovery, school, scim

__all__ = ["GatewayService", "BACKEND_SERVICES"]


class GatewayService(
    apps.AppEndpoints,
    recovery.RecoveryEndpoints,
    school.SchoolSystemEndpoints,
    scim.ScimEndpoints,
    admin.AdminEndpoints,
    internal.InternalEndpoints,
    pages.PageEndpoints,
    auth.SessionEvents,
):
    name = "gateway"

    request_context = RequestContext()
    metrics = Metrics()
    key_guard = KeyGuard()
    config = Config()

    principal = auth.Principal()  # the caller's session (cached)
    school_auth = auth.SchoolAuth()  # the school an API token belongs to

    identity = ServiceRpc("identity")
    verification = ServiceRpc("verification")
    recovery = ServiceRpc("recovery")
    registry_sync = ServiceRpc("registry_sync")
