"""Dependency providers of the identity service: keys for ID numbers and
session tokens, the password hasher that keeps argon2 off the event loop,
the verifier of identity-provider assertions, and ``AccountChanges`` — the
writes every area makes when an account changes (notices, a recycled phone
taken over, sessions ended)."""

import base64
import ctypes
import ctypes.util
import logging
import os
import time

import jwt
from eventlet import tpool
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from prometheus_client import Counter

from services.common.contract.errors import RuleViolation, Unauthenticated
from services.common.plumbing.crypto import Sealer, keyed_hash
from services.common.plumbing.poller import Poller
from services.common.plumbing.providers import sibling
from services.common.plumbing.rpc import ServiceRpc
from services.common.rules.masking import mask_phone
from services.identity import domain
from services.identity.passwords import new_hasher, verify_password

__all__ = [
    "AccountChanges",
    "IdentityKeys",
    "PasswordHasher",
    "LinkProviders",
    "VerificationCodes",
]

log = logging.getLogger(__name__)


class _Keys:
    def __init__(self, seal_key, lookup_key, token_key):
        self.id_sealer = Sealer(seal_key, b"id_number")
        # Destinations of notices waiting to be handed to verification.
        self.notice_sealer = Sealer(seal_key, b"notice_destination")
        self.id_lookup_key = lookup_key
        self._token_key = token_key

    def token_hash(self, token):
        return keyed_hash(self._token_key, "session", token)

    def lookup_hash(self, *parts):
        """Keyed hash for lookups and throttle keys: no plaintext stored."""
        return keyed_hash(self.id_lookup_key, *parts)


class IdentityKeys(DependencyProvider):
    """``ID_SEAL_KEY`` (AES-GCM), ``ID_LOOKUP_KEY`` and ``SESSION_TOKEN_KEY``
    (HMAC), base64, 32 bytes each."""

    def setup(self):
        config = self.container.config
        self.keys = _Keys(
            base64.b64decode(config["ID_SEAL_KEY"]),
            base64.b64decode(config["ID_LOOKUP_KEY"]),
            base64.b64decode(config["SESSION_TOKEN_KEY"]),
        )

    def get_dependency(self, worker_ctx):
        return self.keys


# The hash's own CPU, measured on the thread that runs it: what a login
# costs beyond it is everything else (bench/login.py reads both).
HASH_CPU_SECONDS = Counter(
    "password_hash_cpu_seconds_total",
    "CPU seconds spent in argon2id, on the hashing threads",
    ["operation"],
)


def _timed(operation, fn, *args):
    started = time.thread_time()
    try:
        return fn(*args)
    finally:
        HASH_CPU_SECONDS.labels(operation).inc(time.thread_time() - started)


class _IdleTrim:
    """Hands the hashing threads' resident buffers back to the system once
    identity has hashed nothing for ``idle_seconds``: a burst of logins keeps
    them (no page faults per hash), a quiet service does not hold ~19 MiB per
    hashing thread for nothing. The first hash after a trim faults its buffer
    in once. Green-thread counters only: the hashing threads never touch it."""

    def __init__(self, trim, idle_seconds, clock=time.monotonic):
        self._trim = trim
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._in_flight = 0
        self._last_used = None  # None: nothing used since the last trim

    def begin(self):
        self._in_flight += 1

    def end(self):
        self._in_flight -= 1
        self._last_used = self._clock()

    def tick(self):
        """Trims if the hasher has been idle long enough; True if it did."""
        if self._in_flight or self._last_used is None:
            return False
        if self._clock() - self._last_used < self._idle_seconds:
            return False
        self._last_used = None
        self._trim()
        return True


class _GreenHasher:
    def __init__(self, hasher, concurrency, idle):
        self._hasher = hasher
        self.idle = idle
        # More argon2 runs at once than cores only adds cache and memory
        # thrash (19 MiB each): the rest wait here, green, without a thread.
        self._slots = Semaphore(concurrency)
        # Verified against when a login name matches no account, so a miss
        # costs the same time as a wrong password (no enumeration by timing).
        self.dummy_hash = hasher.hash("no such account: equal timing")

    def hash(self, password):
        return self._run("hash", self._hasher.hash, password)

    def verify(self, stored_hash, password):
        return self._run("verify", verify_password, self._hasher, stored_hash, password)

    def _run(self, operation, fn, *args):
        # argon2 takes tens of milliseconds of CPU: a real thread, so the
        # service's other green threads keep running meanwhile.
        with self._slots:
            self.idle.begin()
            try:
                return tpool.execute(_timed, operation, fn, *args)
            finally:
                self.idle.end()


# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 on 64-bit.
_MMAP_THRESHOLD_MAX = 32 << 20


def keep_hash_memory_resident(memory_kib):
    """Let each hashing thread reuse its argon2 buffer instead of mapping a
    fresh one per hash. The launcher and the image fix glibc's mmap threshold
    at 1 MiB for every service (``MALLOC_MMAP_THRESHOLD_``, so big transient
    buffers go back to the system); for argon2's ``memory_kib`` buffer that
    meant a new mapping per hash, ~4,900 page faults and 6 ms of kernel CPU
    on a 19 ms hash. Here the buffer comes from the malloc arena (at most
    ``MALLOC_ARENA_MAX`` of them) and stays there: one buffer per hashing
    thread resident (~38 MiB on two threads), no faults. False where it
    cannot be done (not glibc, or a buffer above glibc's limit)."""
    wanted = memory_kib * 1024 + (1 << 20)
    if wanted > _MMAP_THRESHOLD_MAX:
        log.warning("argon2 buffer above glibc's mmap threshold limit: mapped per hash")
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        and mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
        # One arena: the buffers free between hashes are reused by whichever
        # thread hashes next (two arenas could each keep two).
        and mallopt(_M_ARENA_MAX, 1)
    )


def hand_back_free_memory():
    """malloc_trim(0): return the arena's free pages (the hashing threads'
    idle buffers among them) to the system. False where there is no glibc."""
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0))
    except (OSError, AttributeError, TypeError):
        return False


class PasswordHasher(DependencyProvider):
    """argon2id with ``ARGON2_MEMORY_KIB`` / ``ARGON2_TIME_COST`` / ``ARGON2_PARALLELISM``."""

    def setup(self):
        config = self.container.config
        concurrency = int(config.get("ARGON2_CONCURRENCY") or os.cpu_count() or 1)
        # As many OS threads as hashes may run: with eventlet's default 20,
        # successive hashes land on ever other threads whose 19 MiB buffers
        # glibc has handed back, and each one faults its memory in again
        # (measured: 1.9-3.2 ms of kernel CPU per hash over 20 threads,
        # 0.6-1.0 ms over 2, two hashes at a time on 2 cores).
        # tpool serves only the hasher in this service.
        tpool.set_num_threads(concurrency)
        memory_kib = int(config.get("ARGON2_MEMORY_KIB", 19456))
        keep_hash_memory_resident(memory_kib)
        self.hasher = _GreenHasher(
            new_hasher(
                memory_kib=memory_kib,
                time_cost=int(config.get("ARGON2_TIME_COST", 2)),
                parallelism=int(config.get("ARGON2_PARALLELISM", 1)),
            ),
            concurrency,
            # Trimming where the buffers were not kept only finds less to hand back.
            _IdleTrim(
                hand_back_free_memory, float(config.get("HASH_MEMORY_IDLE_SECONDS", 3))
            ),
        )
        self.idle_poller = Poller("hash memory trim", self.hasher.idle.tick, 1.0)

    def start(self):
        self.idle_poller.start()

    def stop(self):
        self.idle_poller.stop()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.hasher


class _Assertions:
    """Verifies a provider's assertion: a JWT signed with the provider's key,
    for our audience, not expired; returns the provider's subject."""

    ALGORITHMS = ["RS256", "ES256"]

    def __init__(self, providers, audience):
        self._providers = providers
        self._audience = audience

    def subject(self, provider, assertion):
        settings = self._providers.get(provider)
        if settings is None:
            raise RuleViolation("provider_unknown")
        try:
            claims = jwt.decode(
                assertion,
                settings["key"],
                algorithms=self.ALGORITHMS,
                audience=self._audience,
                issuer=settings["issuer"],
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            log.info("refused a %s assertion: %s", provider, type(exc).__name__)
            raise Unauthenticated("assertion_invalid") from None
        return str(claims["sub"])


class LinkProviders(DependencyProvider):
    """``LINK_PROVIDERS``: ``{name: {public_key_b64, issuer}}`` (PEM public key,
    base64); a provider without a key is off. ``LINK_AUDIENCE``: our id."""

    def setup(self):
        config = self.container.config
        providers = {}
        for name, settings in (config.get("LINK_PROVIDERS") or {}).items():
            key_b64 = (settings or {}).get("public_key_b64")
            if key_b64:
                providers[name] = {
                    "key": base64.b64decode(key_b64),
                    "issuer": settings["issuer"],
                }
        self.assertions = _Assertions(providers, config.get("LINK_AUDIENCE"))

    def get_dependency(self, worker_ctx):
        return self.assertions


class _Changes:
    """A worker's ``AccountChanges``: each call writes in the caller's
    transaction (the caller commits)."""

    def __init__(self, store_of, notice_sealer):
        self._store_of = store_of
        self._notice_sealer = notice_sealer

    def announce(self, kind, account, now, device_id=None, client_ip=None, **masked):
        """Queue a notice of ``kind`` to every channel ``account`` had bound
        (as it was before the change)."""
        store = self._store_of()
        params = domain.notice_params(now, device_id, client_ip, **masked)
        account_id = str(account["id"])
        for channel, destination in domain.notice_destinations(kind, account):
            notice_id = store.insert_notice(
                account_id,
                kind,
                channel,
                self._notice_sealer.seal(destination),
                params,
                now,
            )
            store.add_event(
                "notice_requested",
                {"notice_id": notice_id, "account_id": account_id, "kind": kind},
            )

    def take_over_phone(self, phone, new_holder_id, now):
        """Numbers are recycled: a code just proved the caller holds ``phone``
        now, so an account still bound to it loses it and is told."""
        store = self._store_of()
        holder = store.live_account_by_phone(phone)
        if holder is None or str(holder["id"]) == str(new_holder_id):
            return
        store.release_phone(holder["id"], now)
        store.audit(str(new_holder_id), holder["id"], "phone_taken_over", now)
        self.announce("phone_taken_over", holder, now, phone_masked=mask_phone(phone))
        store.add_event(
            "phone_taken_over",
            {
                "account_id": str(holder["id"]),
                "by_account_id": str(new_holder_id),
                "phone_masked": mask_phone(phone),
                "notify_email": bool(holder["email"]),
            },
        )

    def sessions_ended(self, account_id, session_ids, reason, now, count=None):
        """Audit the end of sessions and tell every gateway to drop them."""
        store = self._store_of()
        store.audit(
            str(account_id),
            account_id,
            "sessions_ended",
            now,
            reason=reason,
            count=len(session_ids) if count is None else count,
        )
        store.add_event(
            "sessions_revoked",
            {
                "account_id": str(account_id),
                "session_ids": [str(s) for s in session_ids],
                "reason": reason,
            },
        )


class AccountChanges(DependencyProvider):
    """``self.changes``: what registration, sessions, profile changes and
    recovery all write when an account changes, on the worker's store (the
    ``db`` provider) with the notice key of ``keys``."""

    def setup(self):
        self.database = sibling(self, "db")
        self.keys = sibling(self, "keys")

    def get_dependency(self, worker_ctx):
        stores = self.database.stores
        return _Changes(lambda: stores[worker_ctx], self.keys.keys.notice_sealer)


class VerificationCodes(DependencyProvider):
    """``self.use_code(destination, purpose, code)``: the code is checked —
    and used up — by verification (its own RPC proxy, with the service's
    deadline); a wrong or spent code raises verification's refusal."""

    verification = ServiceRpc("verification")

    def get_dependency(self, worker_ctx):
        verification = self.verification.get_dependency(worker_ctx)

        def use_code(destination, purpose, code):
            verification.check_code(
                {"destination": destination, "purpose": purpose, "code": code}
            )

        return use_code
