"""Who is calling — the gateway's one auth layer, shared by every surface:

* ``Principal`` (provider): ``self.principal(request)`` is the caller's
  session (an app's bearer token or a page's cookie + CSRF token), checked
  by ``identity`` and cached here for a short while; ``forget(account_id)``
  drops an account's cached sessions (``SessionEvents`` does it on
  identity's broadcasts);
* ``SchoolAuth`` (provider): ``self.school_auth(request, action)`` is the
  school a system's API token belongs to (audited by registry_sync);
  ``school_credentials`` instead passes the token on with a call that
  registry_sync authenticates itself (SCIM);
* functions for the internal token, device ids, CSRF and staff roles.

The cache keeps a principal for ``SESSION_CACHE_SECONDS`` (default 30 s).
Revocation does not wait for that: ``identity`` publishes
``sessions_revoked`` and every gateway instance drops the account's entries
on receipt (a broadcast queue per instance). The TTL only bounds the damage
if a broadcast is lost while a gateway is disconnected from the broker.
"""

import base64
import hashlib
import hmac
import logging
import re
import time

from marshmallow import ValidationError
from nameko.events import BROADCAST, event_handler
from nameko.extensions import DependencyProvider

from services.common.contract.errors import Forbidden, InvalidRequest, Unauthenticated
from services.common.contract.events import (
    EnvelopeSchema,
    RolesChangedPayload,
    SessionsRevokedPayload,
)
from services.common.contract.vocabulary import DEVICE_ID_PATTERN
from services.common.plumbing.crypto import keyed_hash
from services.common.plumbing.rpc import ServiceRpc
from services.common.rules.roles import admin_of

__all__ = [
    "Principal",
    "SchoolAuth",
    "SessionEvents",
    "bearer_token",
    "session_token",
    "check_csrf",
    "csrf_token",
    "device_id",
    "require_internal",
    "require_admin_of",
    "require_staff",
]

log = logging.getLogger(__name__)


def bearer_token(request):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("unauthenticated")
    return token.strip()


_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


SESSION_COOKIE = "sid"
CSRF_COOKIE = "csrf"
DEVICE_COOKIE = "did"
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


def session_token(request):
    """``(token, from_cookie)``: the bearer token of an app, or the session
    cookie a page login set."""
    if request.headers.get("Authorization"):
        return bearer_token(request), False
    token = (request.cookies.get(SESSION_COOKIE) or "").strip()
    if not token:
        raise Unauthenticated("unauthenticated")
    return token, True


def csrf_token(key, session):
    """What a page must echo in ``X-CSRF-Token`` for a cookie session: bound
    to that session by HMAC, readable by the page (cookie ``csrf``) and by
    no other site."""
    return keyed_hash(key, "csrf", session)[:43]


def check_csrf(request, key, session):
    """A state-changing request carried by the cookie must prove it comes
    from our own page (double submit, bound to the session)."""
    if request.method in SAFE_METHODS:
        return
    given = (request.headers.get("X-CSRF-Token") or "").strip()
    if not hmac.compare_digest(given.encode(), csrf_token(key, session).encode()):
        raise Forbidden("csrf_failed")


def device_id(request, required=False):
    header = request.headers.get("X-Device-Id")
    if header is not None:
        # Sent, so it must be one: an empty or malformed header is refused,
        # never silently replaced by the cookie.
        value = header.strip()
        if not _DEVICE_ID.match(value):
            raise InvalidRequest("device_id_required")
        return value
    # A browser without an app: the device cookie the pages set.
    value = (request.cookies.get(DEVICE_COOKIE) or "").strip()
    if not value:
        if required:
            raise InvalidRequest("device_id_required")
        return None
    if not _DEVICE_ID.match(value):
        raise InvalidRequest("device_id_required")
    return value


def require_internal(request, config):
    """Other platform systems (wallet, courses) use ``INTERNAL_API_TOKEN``."""
    expected = config.get("INTERNAL_API_TOKEN") or ""
    given = bearer_token(request)
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("unauthenticated")


def require_admin_of(principal, school_code):
    """A school's admin tools: its ``school_admin`` or ``ops``; anyone else
    with a staff role is refused for another school, anyone without one for
    lacking the role."""
    roles = principal.get("roles") or []
    if admin_of(roles, school_code):
        return
    if any(role.startswith("school_admin:") for role in roles):
        raise Forbidden("not_your_school")
    raise Forbidden("role_required")


class _Cache:
    def __init__(self, ttl, max_entries):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries = {}  # token digest -> (principal, device_id, stored_at)
        # account id -> its token digests: a revocation evicts without a scan.
        self._by_account = {}
        # account id -> when its latest revocation arrived (monotonic).
        self._revoked_at = {}

    @staticmethod
    def _digest(token):
        # The raw token is not kept in memory longer than the request.
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token, device):
        entry = self._entries.get(self._digest(token))
        if entry is None:
            return None
        principal, cached_device, stored_at = entry
        if time.monotonic() - stored_at > self.ttl or cached_device != device:
            return None
        return principal

    def put(self, token, device, principal, asked_at=None):
        """Keep ``principal`` for ``token`` — unless identity was asked
        (``asked_at``, monotonic) before the account's latest revocation
        reached this gateway: that answer may predate the revocation, and
        caching it would undo it for a whole TTL."""
        account_id = principal["account_id"]
        revoked_at = self._revoked_at.get(account_id)
        if revoked_at is not None and (asked_at is None or asked_at <= revoked_at):
            return False
        if len(self._entries) >= self.max_entries:
            # Crude but bounded; misses just ask identity again.
            self._entries.clear()
            self._by_account.clear()
        digest = self._digest(token)
        self._entries[digest] = (principal, device, time.monotonic())
        self._by_account.setdefault(account_id, set()).add(digest)
        return True

    def evict_account(self, account_id):
        now = time.monotonic()
        if len(self._revoked_at) >= self.max_entries:
            # Only answers asked for within one RPC deadline can race a
            # revocation; older marks are kept no longer than the TTL.
            self._revoked_at = {
                a: t for a, t in self._revoked_at.items() if now - t < self.ttl
            }
        self._revoked_at[account_id] = now
        digests = self._by_account.pop(account_id, set())
        for digest in digests:
            self._entries.pop(digest, None)
        return len(digests)


class _Principals:
    """A worker's view of ``Principal``: callable on a request."""

    def __init__(self, identity, cache, csrf_key):
        self._identity = identity
        self._cache = cache
        self.csrf_key = csrf_key

    def __call__(self, request):
        """The caller's session, from the cache or from ``identity``: an app's
        bearer token, or a page's session cookie (then a state-changing
        request must carry its CSRF token)."""
        token, from_cookie = session_token(request)
        if from_cookie:
            check_csrf(request, self.csrf_key, token)
        device = device_id(request)
        if device is None:
            # A session is bound to its device: a request that names none
            # (no X-Device-Id, no device cookie) cannot show it is on it.
            raise Unauthenticated("device_required")
        principal = self._cache.get(token, device)
        if principal is None:
            asked_at = time.monotonic()
            principal = self._identity.authenticate(
                {"token": token, "device_id": device}
            )
            self._cache.put(token, device, principal, asked_at)
        return principal

    def forget(self, account_id):
        """Drop the account's cached sessions (logout, revocation, roles)."""
        return self._cache.evict_account(str(account_id))


class Principal(DependencyProvider):
    """Sessions checked by ``identity`` (its own RPC proxy, with the
    gateway's deadline) and cached per gateway process, shared by its
    workers. Config: ``SESSION_CACHE_SECONDS`` (30), ``SESSION_CACHE_ENTRIES``,
    ``GATEWAY_CSRF_KEY``."""

    identity = ServiceRpc("identity")

    def setup(self):
        config = self.container.config
        self.cache = _Cache(
            ttl=float(config.get("SESSION_CACHE_SECONDS", 30)),
            max_entries=int(config.get("SESSION_CACHE_ENTRIES", 100_000)),
        )
        self.csrf_key = base64.b64decode(config.get("GATEWAY_CSRF_KEY", ""))

    def get_dependency(self, worker_ctx):
        return _Principals(
            self.identity.get_dependency(worker_ctx), self.cache, self.csrf_key
        )


def school_token(request):
    """A school system's bearer token, for registry_sync to check."""
    token = bearer_token(request)
    if len(token) > 256:  # no token of ours is that long
        raise Unauthenticated("invalid_school_token")
    return token


def school_credentials(request, action):
    """What a SCIM call carries for registry_sync to authenticate and audit
    in the same hop as the call itself (``school_auth`` costs a hop of its
    own; SCIM writes are a school's hot path)."""
    return {"school_token": school_token(request), "action": action}


class SchoolAuth(DependencyProvider):
    """``self.school_auth(request, action)``: the school a system's API token
    belongs to; registry_sync checks the token and audits ``action``."""

    registry_sync = ServiceRpc("registry_sync")

    def get_dependency(self, worker_ctx):
        registry_sync = self.registry_sync.get_dependency(worker_ctx)

        def school_of(request, action):
            return registry_sync.authenticate_school(
                {"token": school_token(request), "action": action}
            )

        return school_of


class SessionEvents:
    """identity's broadcasts: every gateway instance drops the account's
    cached principals (a queue per instance). Needs ``principal``."""

    @event_handler(
        "identity", "sessions_revoked", handler_type=BROADCAST, reliable_delivery=False
    )
    def on_sessions_revoked(self, body):
        """A logout, a reset, a recovery: the account's sessions end here too."""
        account_id = _account_named(body, SessionsRevokedPayload, "sessions_revoked")
        if account_id is not None:
            self.principal.forget(account_id)

    @event_handler(
        "identity", "roles_changed", handler_type=BROADCAST, reliable_delivery=False
    )
    def on_roles_changed(self, body):
        """A granted or withdrawn role counts from the next request."""
        account_id = _account_named(body, RolesChangedPayload, "roles_changed")
        if account_id is not None:
            self.principal.forget(account_id)


def _account_named(body, payload_schema, event_type):
    """The account a broadcast names; a malformed one is logged and dropped
    (nothing to evict)."""
    try:
        envelope = EnvelopeSchema().load(body)
        return payload_schema().load(envelope["payload"])["account_id"]
    except ValidationError:
        log.error("dropping a malformed %s event", event_type)
        return None


def require_staff(principal, *roles):
    """Platform staff surfaces (the review queue): one of ``roles``."""
    held = set(principal.get("roles") or [])
    if not held.intersection(roles):
        raise Forbidden("role_required")
