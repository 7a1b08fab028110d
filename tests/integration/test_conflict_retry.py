"""A unit of work aborted by PostgreSQL for a conflict (deadlock 40P01,
serialization failure 40001) is replayed whole by ``@rpc``, so callers see
the answer, never an internal error; a conflict that will not go away ends
as a documented 503 ``database_conflict``.

The same for a connection caught by a failover: one that reaches a server
that was demoted to a replica gets its writes refused (25006); the unit of
work is replayed once on a fresh connection, and the stale connection is
never pooled again. When every connection is read-only (no primary yet),
the caller gets 503 ``database_unavailable``."""

import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.errors import ServiceUnavailable
from services.common.plumbing import base
from services.common.plumbing.db import Database, Store
from services.common.plumbing.rpc import rpc

attempts = []

SETUP_SQL = """
CREATE TABLE IF NOT EXISTS test_accounts (id int PRIMARY KEY, balance int NOT NULL);
INSERT INTO test_accounts VALUES (1, 100), (2, 100) ON CONFLICT (id) DO NOTHING;
"""


class LedgerStore(Store):
    def touch(self, account_id):
        self.execute(
            "UPDATE test_accounts SET balance = balance + 1 WHERE id = %(id)s",
            {"id": account_id},
        )

    def serializable(self):
        self.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")

    def balance_sum(self):
        return self.fetchone("SELECT sum(balance) AS total FROM test_accounts")["total"]


class LedgerService(base.ServiceBase):
    name = "ledger"
    db = Database(LedgerStore)

    @rpc
    def transfer(self, first, second, pause):
        """Locks ``first`` then ``second``: two calls in opposite order deadlock."""
        attempts.append((first, second))
        self.db.touch(first)
        eventlet.sleep(pause)
        self.db.touch(second)
        self.db.commit()
        return "done"

    @rpc
    def write_after_failover(self, demoted):
        """``demoted``: "first" — the first attempt's connection reaches a
        server that became a replica since it was opened; "every" — so does
        every attempt's (no primary at all)."""
        attempts.append("failover")
        if demoted == "every" or attempts.count("failover") == 1:
            # From now on this session refuses writes, as a replica's does.
            self.db.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            self.db.commit()
        self.db.touch(1)
        self.db.commit()
        return "done"

    @rpc
    def touch(self):
        self.db.touch(2)
        self.db.commit()
        return "done"

    @rpc
    def always_conflicts(self):
        attempts.append("always")
        import psycopg2.errors

        raise psycopg2.errors.SerializationFailure("could not serialize access")


@pytest.fixture
def ledger(container_factory, make_config, db_query):
    db_query("identity")(SETUP_SQL)
    config = make_config("identity", max_workers=4)
    container_factory(LedgerService, config).start()
    attempts.clear()
    return config


def test_a_real_deadlock_is_retried_and_both_calls_succeed(ledger, db_query):
    before = db_query("identity")("SELECT sum(balance) AS total FROM test_accounts")
    with ServiceRpcProxy("ledger", ledger) as proxy:
        one = proxy.transfer.call_async(1, 2, 0.3)
        two = proxy.transfer.call_async(2, 1, 0.3)
        assert [one.result(), two.result()] == ["done", "done"]
    # One of them was chosen as the deadlock victim and ran again.
    assert len(attempts) == 3
    after = db_query("identity")("SELECT sum(balance) AS total FROM test_accounts")
    # Each transfer touched two rows exactly once in effect: the victim's
    # first attempt was rolled back whole.
    assert after[0]["total"] - before[0]["total"] == 4


def test_a_conflict_that_persists_is_a_503_not_a_crash(ledger):
    with ServiceRpcProxy("ledger", ledger) as proxy:
        with pytest.raises(ServiceUnavailable) as caught:
            proxy.always_conflicts()
    assert caught.value.code == "database_conflict"
    assert caught.value.extra["retry_after"] == 1
    assert attempts.count("always") == 4


def test_a_write_on_a_demoted_primary_is_replayed_on_a_fresh_connection(ledger):
    with ServiceRpcProxy("ledger", ledger) as proxy:
        assert proxy.write_after_failover("first") == "done"
        assert attempts.count("failover") == 2
        # The read-only connection was closed, not pooled: every later write
        # gets a writable one.
        for _ in range(8):
            assert proxy.touch() == "done"


def test_no_writable_primary_at_all_is_a_503_not_a_crash(ledger):
    with ServiceRpcProxy("ledger", ledger) as proxy:
        with pytest.raises(ServiceUnavailable) as caught:
            proxy.write_after_failover("every")
        assert caught.value.code == "database_unavailable"
        assert attempts.count("failover") == 3
        assert proxy.touch() == "done"
