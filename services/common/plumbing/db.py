"""PostgreSQL access for Nameko workers.

``Database(StoreClass)`` is the dependency provider: each worker gets a
``StoreClass`` bound to one pooled connection, taken on first use and given
back (rolled back if uncommitted) in ``worker_teardown``. Stores hold all SQL
of a service; ``Store`` here is their base with the plumbing: cursors,
commit, unique-violation mapping and the transactional outbox.
"""

import functools
import json
import logging
import random
import re
import uuid
import weakref

import eventlet
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider

from services.common.contract.errors import ServiceUnavailable
from services.common.contract.events import PAYLOAD_SCHEMAS
from services.common.plumbing.context import current_request_id

__all__ = [
    "ConnectionPool",
    "Database",
    "Prepared",
    "PooledConnection",
    "Store",
    "require_green_psycopg",
    "retry_conflicts",
    "is_conflict",
    "is_database_outage",
    "CONFLICT_ATTEMPTS",
    "OUTAGE_ATTEMPTS",
]

log = logging.getLogger(__name__)

# Statements are module constants named *_SQL: a test prepares every one of
# them against the migrated schema, so SQL and migrations cannot drift apart.
PING_SQL = "SELECT 1 AS ok"
# Not *_SQL: utility statements, which PREPARE cannot check.
RELAX_DURABILITY = "SET LOCAL synchronous_commit = off"
BEGIN, COMMIT, ROLLBACK = "BEGIN", "COMMIT", "ROLLBACK"
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
INSERT_OUTBOX_SQL = (
    "INSERT INTO outbox (event_id, event_type, payload, request_id)"
    " VALUES (%(event_id)s, %(event_type)s, %(payload)s, %(request_id)s)"
)
COUNT_EVENT_FAILURE_SQL = """
INSERT INTO event_failures AS f (handler, event_id, attempts, last_error)
VALUES (%(handler)s, %(event_id)s, 1, %(error)s)
ON CONFLICT (handler, event_id) DO UPDATE
   SET attempts = f.attempts + 1, last_error = EXCLUDED.last_error, updated_at = now()
RETURNING attempts
"""
PARK_EVENT_SQL = """
INSERT INTO dead_events (handler, queue, source, event_type, event_id, body, reason,
                         error, attempts)
VALUES (%(handler)s, %(queue)s, %(source)s, %(event_type)s, %(event_id)s, %(body)s,
        %(reason)s, %(error)s, %(attempts)s)
RETURNING id
"""
CLAIM_EVENT_SQL = (
    "INSERT INTO processed_events (handler, event_id) VALUES (%(handler)s, %(event_id)s)"
    " ON CONFLICT DO NOTHING"
)


def require_green_psycopg():
    """Refuse to start if psycopg2 would block the whole process.

    ``eventlet.monkey_patch()`` (which ``nameko run`` applies) installs a wait
    callback that makes psycopg2 yield to other green threads; without it one
    slow query stalls every worker of the service.
    """
    if psycopg2.extensions.get_wait_callback() is None:
        raise RuntimeError(
            "psycopg2 is not green: run under `nameko run` or call "
            "eventlet.monkey_patch() before importing the service"
        )


# A deadlock (40P01) or serialization failure (40001) means PostgreSQL rolled
# the transaction back and the same work would most likely succeed now.
CONFLICT_ATTEMPTS = 4


def is_conflict(exc):
    """True for SQLSTATE 40P01 / 40001 (``TransactionRollbackError``)."""
    return isinstance(exc, psycopg2.extensions.TransactionRollbackError)


# A lost connection (the server restarted, failed over or is down) is not
# the request's fault: a pooled connection that died while idle is found
# dead only when used, so the unit of work runs again on a fresh one; while
# the server stays away the caller gets 503 ``database_unavailable``.
OUTAGE_ATTEMPTS = 3
OUTAGE_PAUSE_SECONDS = 0.25


def is_database_outage(exc):
    """True when the database connection failed, not the statement: the
    connection broke or could not be opened (``InterfaceError``, or an
    ``OperationalError`` that is neither a conflict nor a cancelled query),
    or it leads to a server that is no longer the primary (25006, a write
    refused as read-only: the connection was made before a failover and the
    server it reaches was demoted — with Patroni behind HAProxy the old
    primary's sessions are cut, but one may slip through the switch)."""
    if isinstance(
        exc, (psycopg2.InterfaceError, psycopg2.errors.ReadOnlySqlTransaction)
    ):
        return True
    return (
        isinstance(exc, psycopg2.OperationalError)
        and not is_conflict(exc)
        and not isinstance(exc, psycopg2.errors.QueryCanceled)
    )


def _stores_of(service):
    return [value for value in vars(service).values() if isinstance(value, Store)]


def retry_conflicts(fn, attempts=None):
    """Run a worker method again, whole, when the database aborted it for a
    conflict: every store of the worker is rolled back, a short jittered
    pause lets the other transaction finish, and the method starts over.

    Whole-method replay is safe because every command is written to be
    idempotent (the brief's rule): what an earlier attempt committed before
    the conflict is found again, not done twice. After ``attempts`` tries
    the caller gets ``ServiceUnavailable("database_conflict")`` (503, with
    ``retry_after``), never an internal error.
    """
    attempts = attempts or CONFLICT_ATTEMPTS

    @functools.wraps(fn)
    def run_unit_of_work(self, *args, **kwargs):
        conflicts = outages = 0
        while True:
            try:
                return fn(self, *args, **kwargs)
            except psycopg2.extensions.TransactionRollbackError as exc:
                conflicts += 1
                for store in _stores_of(self):
                    store.rollback()
                if conflicts == attempts:
                    log.error(
                        "ALERT %s: database conflict (%s) persisted through %d tries",
                        fn.__qualname__,
                        exc.pgcode,
                        attempts,
                    )
                    raise ServiceUnavailable(
                        "database_conflict", {"retry_after": 1}
                    ) from None
                log.warning(
                    "%s: database conflict (%s); unit of work retried (%d/%d)",
                    fn.__qualname__,
                    exc.pgcode,
                    conflicts,
                    attempts - 1,
                )
                eventlet.sleep(random.uniform(0.005, 0.02 * 2**conflicts))
            except (
                psycopg2.InterfaceError,
                psycopg2.OperationalError,
                psycopg2.errors.ReadOnlySqlTransaction,
            ) as exc:
                if not is_database_outage(exc):
                    raise
                outages += 1
                for store in _stores_of(self):
                    store.discard()  # a broken connection is closed, not pooled
                if outages == OUTAGE_ATTEMPTS:
                    log.error(
                        "ALERT %s: database unavailable (%s) through %d tries",
                        fn.__qualname__,
                        type(exc).__name__,
                        outages,
                    )
                    raise ServiceUnavailable(
                        "database_unavailable", {"retry_after": 2}
                    ) from None
                log.warning(
                    "%s: database connection lost (%s); unit of work retried",
                    fn.__qualname__,
                    type(exc).__name__,
                )
                eventlet.sleep(OUTAGE_PAUSE_SECONDS * outages)

    return run_unit_of_work


class Prepared:
    """A hot statement PostgreSQL parses and plans once per connection
    (``PREPARE``) and then only executes: for a statement of several
    data-modifying CTEs the planning cost more than the execution (0.14 of
    0.26 ms measured for the SCIM create). ``sql`` is written as any other
    (``%(name)s`` parameters, kept as a ``*_SQL`` constant so the migration
    test checks it); ``Store.execute`` takes a ``Prepared`` where it takes
    SQL. PostgreSQL deduces each parameter's type from where it is used, as
    it does for a plain statement. A prepared statement belongs to its
    session and survives a rollback; a new connection prepares again."""

    _PARAMETER = re.compile(r"%\((\w+)\)s")

    def __init__(self, name, sql):
        names = []

        def positional(match):
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        body = self._PARAMETER.sub(positional, sql).replace("%%", "%")
        self.name = name
        self.prepare_sql = f"PREPARE {name} AS {body}"
        arguments = ", ".join(f"%({n})s" for n in names)
        self.execute_sql = (
            f"EXECUTE {name} ({arguments})" if names else f"EXECUTE {name}"
        )

    def __repr__(self):
        return f"Prepared({self.name!r})"


class PooledConnection(psycopg2.extensions.connection):
    """A pooled connection that remembers which ``Prepared`` statements its
    session holds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepared = set()


class ConnectionPool:
    """A fixed-size pool of psycopg2 connections that waits for a free one.

    Not ``psycopg2.pool.ThreadedConnectionPool``: it raises ``PoolError`` when
    exhausted instead of waiting, closes connections above ``minconn``, and
    its ``closeall`` also closes connections still in use — under eventlet a
    connection whose green thread was killed mid-query can hold psycopg2's
    connection mutex, and closing it then blocks the whole process (seen when
    a container is killed). Here a semaphore bounds the connections, idle
    ones are kept (none is closed for being "extra") and ``closeall`` closes
    only idle ones; a connection coming back after that is closed on return.
    """

    _HEALTHY = (
        psycopg2.extensions.TRANSACTION_STATUS_IDLE,
        psycopg2.extensions.TRANSACTION_STATUS_INTRANS,
        psycopg2.extensions.TRANSACTION_STATUS_INERROR,
    )

    def __init__(
        self,
        dsn,
        size,
        *,
        application_name="service",
        connect_timeout=5,
        statement_timeout_ms=10000,
        acquire_timeout=10,
    ):
        self.size = size
        self.acquire_timeout = acquire_timeout
        self._gate = Semaphore(size)
        self._idle = []
        self._closed = False
        self._connect_kwargs = {
            "dsn": dsn,
            "connect_timeout": connect_timeout,
            "application_name": application_name,
            "options": f"-c statement_timeout={int(statement_timeout_ms)}",
        }
        # Open one now so a wrong DSN fails the service's start, not its first call.
        self._idle.append(self._connect())

    def _connect(self):
        return psycopg2.connect(
            connection_factory=PooledConnection, **self._connect_kwargs
        )

    def getconn(self):
        if not self._gate.acquire(timeout=self.acquire_timeout):
            raise ServiceUnavailable("database_busy")
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:  # closed: the server restarted since
                    return conn
            return self._connect()
        except Exception:
            self._gate.release()
            raise

    def putconn(self, conn):
        try:
            healthy = not conn.closed and conn.info.transaction_status in self._HEALTHY
            if healthy:
                self._reset(conn)
            if healthy and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()
        except psycopg2.Error:
            conn.close()
        finally:
            self._gate.release()

    @staticmethod
    def _reset(conn):
        """Back to no transaction and psycopg2's own transaction handling,
        whoever opened the transaction: psycopg2, or a ``Store`` that sent
        its BEGIN itself (in autocommit mode, where ``rollback()`` does
        nothing)."""
        conn.rollback()
        if conn.get_transaction_status() != _IDLE:
            conn.autocommit = True
            conn.cursor().execute(ROLLBACK)
        conn.autocommit = False

    def closeall(self):
        self._closed = True
        while self._idle:
            self._idle.pop().close()


@functools.cache
def _payload_schema(event_type):
    """The contract's schema of ``event_type``'s payload, built once (a
    schema holds no per-call state), or None."""
    schema_cls = PAYLOAD_SCHEMAS.get(event_type)
    return schema_cls() if schema_cls is not None else None


class Store:
    """Base of every service's store: one transaction per worker.

    Subclasses define methods with SQL in module constants and may set
    ``constraint_errors`` mapping a constraint name to a zero-argument callable
    returning the ``ServiceError`` to raise on a unique violation of it.
    """

    constraint_errors = {}

    # How often an event handler may fail on one event before it is parked;
    # set from the EVENT_MAX_ATTEMPTS config key by ``Database``.
    event_max_attempts = 5

    def __init__(self, pool, on_commit=None):
        self._pool = pool
        self._conn = None
        self._on_commit = on_commit
        self._events_pending = False

    # -- connection and transaction -------------------------------------
    # A store opens its transactions itself: psycopg2 would send BEGIN as a
    # round trip of its own before the first statement; here it goes in the
    # same message as that statement (as PgJDBC does), so a transaction of
    # one statement and its commit is two round trips, not three. The
    # connection is in psycopg2's autocommit mode while the store holds it,
    # so COMMIT and ROLLBACK are statements too; the pool puts it back as it
    # was (``ConnectionPool.putconn``).
    @property
    def conn(self):
        if self._conn is None:
            conn = self._pool.getconn()
            conn.autocommit = True
            self._conn = conn
        return self._conn

    def _in_transaction(self):
        # get_transaction_status(): libpq's own field, no ConnectionInfo
        # object built per statement as ``conn.info`` does.
        return self._conn is not None and self._conn.get_transaction_status() != _IDLE

    def cursor(self):
        return self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

    def execute(self, sql, params=None):
        """Run one statement (SQL, or a ``Prepared`` one) in the store's
        transaction, opening it if none is open; unique violations become
        domain errors."""
        return self._run(sql, params, alone=False)

    def _run(self, sql, params, alone):
        cur = self.cursor()
        text = sql
        if isinstance(sql, Prepared):
            if sql.name not in self.conn.prepared:
                cur.execute(sql.prepare_sql)  # outside any transaction
                self.conn.prepared.add(sql.name)
            text = sql.execute_sql
        if not alone and not self._in_transaction():
            text = f"{BEGIN}; {text}"
        try:
            cur.execute(text, params)
        except psycopg2.errors.UniqueViolation as exc:
            factory = self.constraint_errors.get(exc.diag.constraint_name)
            if factory is None:
                raise
            self.rollback()
            raise factory() from None
        except psycopg2.errors.FeatureNotSupported:
            if not isinstance(sql, Prepared):
                raise
            # "cached plan must not change result type": a migration changed
            # what the statement returns under a running service. This
            # session's statement is stale for good; the connection goes,
            # and the next one prepares the statement as it now reads.
            self.discard()
            raise
        return cur

    def fetchone(self, sql, params=None):
        return self.execute(sql, params).fetchone()

    def fetchall(self, sql, params=None):
        return self.execute(sql, params).fetchall()

    def execute_alone(self, sql, params=None):
        """Run one statement as its own transaction (autocommit): one round
        trip instead of begin, statement, commit. For rows many requests
        share (rate-limit windows) the row locks last one statement, and a
        statement that takes its rows in one global order cannot deadlock.
        Commits the worker's open transaction first."""
        self.commit()
        return self._run(sql, params, alone=True)

    def fetchall_alone(self, sql, params=None):
        """``execute_alone`` and its rows."""
        return self.execute_alone(sql, params).fetchall()

    def fetchone_alone(self, sql, params=None):
        rows = self.fetchall_alone(sql, params)
        return rows[0] if rows else None

    def commit(self):
        if not self._in_transaction():
            return
        self._conn.cursor().execute(COMMIT)
        if self._events_pending and self._on_commit is not None:
            self._events_pending = False
            self._on_commit()

    def rollback(self):
        if self._in_transaction():
            self._conn.cursor().execute(ROLLBACK)
        self._events_pending = False

    def discard(self):
        """Drop a connection that failed: closed and never pooled again
        (its server may be gone or restarted)."""
        self._events_pending = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            finally:
                self._pool.putconn(conn)

    def close(self):
        """Give the connection back; anything uncommitted is rolled back."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._pool.putconn(conn)

    def relax_durability(self):
        """Let this transaction's commit return before its WAL is flushed.

        For counters whose loss in a crash is harmless (rate-limit windows):
        the row lock is released sooner and the caller does not wait for fsync.
        """
        self.execute(RELAX_DURABILITY)

    def ping(self):
        return self.fetchone(PING_SQL)["ok"] == 1

    # -- transactional outbox --------------------------------------------
    def add_event(self, event_type, payload):
        """Queue an event in this transaction; it is published after commit.

        If the transaction rolls back the event is gone with it, so no
        consumer ever hears of a change that did not happen. The payload is
        checked against the contract's schema for ``event_type`` first, so a
        producer that drifts from it fails here, not in every consumer.
        """
        body = self.event_body(event_type, payload)
        event_id = str(uuid.uuid4())
        self.execute(
            INSERT_OUTBOX_SQL,
            {
                "event_id": event_id,
                "event_type": event_type,
                "payload": body,
                "request_id": current_request_id(),
            },
        )
        self._events_pending = True
        return event_id

    @staticmethod
    def event_body(event_type, payload):
        """``payload`` as the outbox stores it, checked against the contract's
        schema for ``event_type`` (for writes that insert the row themselves)."""
        body = json.dumps(payload, ensure_ascii=False, default=str)
        schema = _payload_schema(event_type)
        if schema is not None:
            problems = schema.validate(json.loads(body))
            if problems:
                raise ValueError(
                    f"{event_type} payload breaks the contract: {sorted(problems)}"
                )
        return body

    def events_committed(self):
        """A statement that committed by itself wrote outbox rows: wake the
        relay as a commit of this store would."""
        if self._on_commit is not None:
            self._on_commit()

    def claim_event(self, handler, event_id):
        """Record that ``handler`` handles ``event_id`` in this transaction.

        False means it was handled before (a redelivery): skip it. If the
        handler fails the claim rolls back with its work, so a redelivery
        is handled again.
        """
        cur = self.execute(CLAIM_EVENT_SQL, {"handler": handler, "event_id": event_id})
        return cur.rowcount == 1

    def count_event_failure(self, handler, event_id, error):
        """One more failed attempt of ``handler`` on ``event_id``, committed at
        once (the handler's own work was rolled back); returns the count."""
        self.rollback()
        row = self.fetchone(
            COUNT_EVENT_FAILURE_SQL,
            {"handler": handler, "event_id": event_id, "error": error},
        )
        self.commit()
        return row["attempts"]

    def park_event(self, **dead):
        """Keep an event its handler cannot take, for ops to see and replay."""
        self.rollback()
        row = self.fetchone(
            PARK_EVENT_SQL,
            {**dead, "body": json.dumps(dead["body"], ensure_ascii=False, default=str)},
        )
        self.commit()
        return row["id"]


class Database(DependencyProvider):
    """Injects a ``store_cls`` instance bound to one pooled connection.

    Config: ``DB_URI``; optional ``DB_POOL_SIZE`` (default ``max_workers`` + 1
    for the outbox relay), ``DB_STATEMENT_TIMEOUT_MS``, ``DB_CONNECT_TIMEOUT``,
    ``EVENT_MAX_ATTEMPTS`` (failures of a handler on one event before it is
    parked, default 5). A service that publishes events declares an
    ``Outbox`` provider beside it (``services.common.plumbing.outbox``),
    which sets ``on_commit`` to wake its relay.
    """

    def __init__(self, store_cls):
        self.store_cls = store_cls
        self.stores = weakref.WeakKeyDictionary()
        self.pool = None
        self.on_commit = None
        # Run before the pool closes (the outbox relay stops draining first).
        self.on_stop = []
        self.event_max_attempts = Store.event_max_attempts

    def setup(self):
        require_green_psycopg()
        config = self.container.config
        self.event_max_attempts = int(config.get("EVENT_MAX_ATTEMPTS") or 5)
        size = int(config.get("DB_POOL_SIZE") or int(config.get("max_workers", 10)) + 1)
        self.pool = ConnectionPool(
            config["DB_URI"],
            size,
            application_name=self.container.service_name,
            connect_timeout=int(config.get("DB_CONNECT_TIMEOUT", 5)),
            statement_timeout_ms=int(config.get("DB_STATEMENT_TIMEOUT_MS", 10000)),
        )

    def stop(self):
        for hook in self.on_stop:
            hook()
        if self.pool is not None:
            self.pool.closeall()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        store = self.store_cls(self.pool, on_commit=self.on_commit)
        store.event_max_attempts = self.event_max_attempts
        self.stores[worker_ctx] = store
        return store

    def worker_teardown(self, worker_ctx):
        store = self.stores.pop(worker_ctx, None)
        if store is not None:
            store.close()
