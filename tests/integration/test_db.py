"""The database plumbing against real PostgreSQL: the pool waits instead of
failing, unique violations become domain errors by constraint name, and
psycopg2 is green (and a service refuses to start when it is not)."""

import eventlet
import psycopg2.extensions
import pytest
from nameko.testing.services import dummy
from nameko.testing.utils import get_extension

from services.common.contract.errors import Conflict
from services.common.plumbing.db import ConnectionPool, Database, Store


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
