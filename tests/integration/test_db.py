"""The database plumbing against real PostgreSQL: the pool waits instead of
failing, unique violations become domain errors by constraint name, and
psycopg2 is green (and a service refuses to start when it is not)."""

import eventlet
import psycopg2.errors
import psycopg2.extensions
import pytest
from nameko.testing.services import dummy
from nameko.testing.utils import get_extension

from services.common.contract.errors import Conflict
from services.common.plumbing.db import ConnectionPool, Database, Prepared, Store


@pytest.fixture
def pool(databases):
    pool = ConnectionPool(
        databases.uris["identity"], 2, acquire_timeout=5, statement_timeout_ms=5000
    )
    yield pool
    pool.closeall()


def test_exhausted_pool_waits_for_a_connection_instead_of_raising(pool):
    held = [pool.getconn(), pool.getconn()]
    got = []

    def borrower():
        conn = pool.getconn()
        got.append(conn)
        pool.putconn(conn)

    thread = eventlet.spawn(borrower)
    eventlet.sleep(0.2)
    assert got == []  # still waiting, not failed
    pool.putconn(held.pop())
    thread.wait()
    assert len(got) == 1
    pool.putconn(held.pop())


class TagStore(Store):
    constraint_errors = {"test_tags_name_key": lambda: Conflict("tag_taken")}

    def add(self, name):
        self.execute("CREATE TABLE IF NOT EXISTS test_tags (name text UNIQUE)")
        self.execute("INSERT INTO test_tags (name) VALUES (%(name)s)", {"name": name})


def test_unique_violation_maps_to_the_domain_error_of_its_constraint(pool):
    first = TagStore(pool)
    first.add("dup")
    first.commit()
    first.close()
    second = TagStore(pool)
    with pytest.raises(Conflict) as caught:
        second.add("dup")
    assert caught.value.code == "tag_taken"
    second.close()


def test_a_store_sends_begin_with_its_first_statement(pool):
    """One round trip opens the transaction and runs the first statement:
    ``statement_timestamp()`` is the arrival of the client's message, ``now()``
    the transaction's start, equal only when BEGIN came in that message. The
    transaction still spans the statements after it, rolls back whole, and
    the pool takes the connection back with no transaction open and in
    psycopg2's own mode, whoever left it open."""
    store = Store(pool)
    same = store.fetchone("SELECT now() = statement_timestamp() AS same")["same"]
    assert same is True
    later = store.fetchone("SELECT now() = statement_timestamp() AS same")["same"]
    assert later is False  # the second statement is in the same transaction
    store.execute("CREATE TABLE IF NOT EXISTS test_begin_rows (n int)")
    store.commit()
    store.execute("INSERT INTO test_begin_rows VALUES (1)")
    store.execute("INSERT INTO test_begin_rows VALUES (2)")
    store.rollback()
    store.execute("INSERT INTO test_begin_rows VALUES (3)")
    conn = store.conn
    assert (
        conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    )
    store.close()  # left open: the pool rolls it back
    assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert conn.autocommit is False
    reader = Store(pool)
    assert reader.fetchall("SELECT n FROM test_begin_rows") == []
    reader.execute("DROP TABLE test_begin_rows")
    reader.commit()
    reader.close()


ADD_TAG = Prepared(
    "test_add_tag",
    "INSERT INTO test_prepared_tags (name, note) VALUES (%(name)s, %(note)s || '%%')"
    " RETURNING name, note, %(name)s = name AS same",
)


class PreparedTagStore(Store):
    constraint_errors = {"test_prepared_tags_name_key": lambda: Conflict("tag_taken")}

    def add(self, name):
        return self.fetchone(ADD_TAG, {"name": name, "note": "n"})

    def session_statements(self):
        return [
            row["name"]
            for row in self.fetchall("SELECT name FROM pg_prepared_statements")
        ]


@pytest.fixture
def tags(pool):
    store = Store(pool)
    store.execute("DROP TABLE IF EXISTS test_prepared_tags")
    store.execute("CREATE TABLE test_prepared_tags (name text UNIQUE, note text)")
    store.commit()
    store.close()
    yield
    store = Store(pool)
    store.execute("DROP TABLE IF EXISTS test_prepared_tags")
    store.commit()
    store.close()


def test_a_prepared_statement_is_prepared_once_per_connection(pool, tags):
    store = PreparedTagStore(pool)
    assert store.add("a") == {"name": "a", "note": "n%", "same": True}
    store.rollback()  # a session's prepared statement outlives a rollback
    assert store.add("b")["name"] == "b"
    store.commit()
    assert store.session_statements() == ["test_add_tag"]
    assert store.conn.prepared == {"test_add_tag"}
    with pytest.raises(Conflict) as caught:  # still mapped by constraint
        store.add("b")
    assert caught.value.code == "tag_taken"
    store.close()


def test_a_prepared_statement_whose_result_changed_is_prepared_again(pool, tags):
    """A migration under a running service changes what a prepared statement
    returns: that session's statement is stale for good, so its connection
    is dropped once and the next one prepares the statement afresh."""
    store = PreparedTagStore(pool)
    store.add("a")
    store.commit()
    stale = store.conn
    changer = Store(pool)
    changer.execute("ALTER TABLE test_prepared_tags ALTER COLUMN note TYPE varchar")
    changer.commit()
    changer.close()
    with pytest.raises(psycopg2.errors.FeatureNotSupported):
        store.add("b")
    assert stale.closed
    store.close()
    again = PreparedTagStore(pool)
    assert again.add("b")["note"] == "n%"
    again.commit()
    again.close()


def test_psycopg2_is_green_so_a_blocked_query_does_not_block_the_process(pool):
    # A holds an advisory lock; B's query waits for it inside PostgreSQL. If
    # psycopg2 blocked the process, A's green thread could never release it
    # and B would hit its statement timeout instead of getting the lock.
    a_conn, b_conn = pool.getconn(), pool.getconn()
    order = []
    with a_conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(424242)")

    def b():
        with b_conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(424242)")
            order.append("b got lock")
            cur.execute("SELECT pg_advisory_unlock(424242)")

    thread = eventlet.spawn(b)
    eventlet.sleep(0.3)
    order.append("a releasing")
    with a_conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(424242)")
    thread.wait()
    assert order == ["a releasing", "b got lock"]
    pool.putconn(a_conn)
    pool.putconn(b_conn)


def test_service_refuses_to_start_when_psycopg2_is_not_green(
    container_factory, make_config
):
    class Plain:
        name = "plain"
        db = Database(Store)

        @dummy
        def noop(self):
            pass

    callback = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    try:
        container = container_factory(Plain, make_config("identity"))
        with pytest.raises(RuntimeError, match="not green"):
            get_extension(container, Database).setup()
    finally:
        psycopg2.extensions.set_wait_callback(callback)
