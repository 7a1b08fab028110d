"""Throttle rows, one shape in every service that throttles (identity and
recovery each have a ``throttles`` table of the same columns), and the
``Throttles`` provider that applies the one model
(``services.common.rules.throttles.ThrottlePolicy``) with a worker's store.

    store (ThrottleStore mixin)   SQL: count an attempt, block, read, clear
    Throttles (provider)          self.throttles.hit / record / refuse_if_blocked
"""

from nameko.extensions import DependencyProvider

from services.common.plumbing.providers import sibling
from services.common.rules.throttles import throttle_refusal

__all__ = ["ThrottleStore", "Throttles"]

THROTTLE_ROWS_SQL = """
SELECT key, failures, window_start, last_failure, blocked_until FROM throttles
 WHERE key = ANY(%(keys)s)
"""
BLOCKED_UNTIL_SQL = """
SELECT max(blocked_until) AS blocked_until FROM throttles WHERE key = ANY(%(keys)s)
"""
# One attempt under ``key``. The count starts again when the policy forgets:
# a back-off policy once no failure came for its window (``idle``), a window
# policy once its window, counted from the first attempt, has passed.
COUNT_ATTEMPT_SQL = """
INSERT INTO throttles AS t (key, failures, window_start, last_failure)
VALUES (%(key)s, 1, %(now)s, %(now)s)
ON CONFLICT (key) DO UPDATE
   SET failures = CASE WHEN (%(idle)s AND t.last_failure < %(forget_before)s)
                         OR (NOT %(idle)s AND t.window_start <= %(forget_before)s)
                       THEN 1 ELSE t.failures + 1 END,
       window_start = CASE WHEN (%(idle)s AND t.last_failure < %(forget_before)s)
                             OR (NOT %(idle)s AND t.window_start <= %(forget_before)s)
                           THEN %(now)s ELSE t.window_start END,
       last_failure = %(now)s
RETURNING failures, window_start
"""
BLOCK_SQL = (
    "UPDATE throttles SET blocked_until = %(until)s WHERE key = %(key)s RETURNING key"
)
CLEAR_THROTTLE_SQL = "DELETE FROM throttles WHERE key = %(key)s"
# Rows whose attempts are all forgotten and that block nothing any more.
PURGE_THROTTLES_SQL = """
DELETE FROM throttles
 WHERE last_failure < %(forget_before)s
   AND (blocked_until IS NULL OR blocked_until < %(now)s)
"""


class ThrottleStore:
    """Mixed into a service's ``Store``: all SQL of its ``throttles`` table.
    ``alone``: in a statement of its own, autocommitted (throttle rows are
    shared by many requests), instead of the caller's transaction."""

    def throttle_rows(self, keys, alone=False):
        """``{key: row}`` of the rows that exist among ``keys``."""
        read = self.fetchall_alone if alone else self.fetchall
        return {
            row["key"]: row for row in read(THROTTLE_ROWS_SQL, {"keys": list(keys)})
        }

    def blocked_until(self, keys):
        """The latest ``blocked_until`` among ``keys`` (None if none)."""
        return self.fetchone(BLOCKED_UNTIL_SQL, {"keys": list(keys)})["blocked_until"]

    def count_attempt(self, policy, key, now, alone=False):
        """One more attempt under ``key``; the row's ``failures`` and
        ``window_start`` after it."""
        read = self.fetchone_alone if alone else self.fetchone
        return read(
            COUNT_ATTEMPT_SQL,
            {
                "key": key,
                "now": now,
                "idle": policy.backs_off,
                "forget_before": now - policy.window,
            },
        )

    def block(self, key, until, alone=False):
        read = self.fetchall_alone if alone else self.fetchall
        read(BLOCK_SQL, {"key": key, "until": until})

    def clear_throttle(self, key):
        self.execute(CLEAR_THROTTLE_SQL, {"key": key})

    def purge_throttles(self, now, forget_before):
        return self.execute(
            PURGE_THROTTLES_SQL, {"now": now, "forget_before": forget_before}
        ).rowcount


class _Gate:
    def __init__(self, store_of, alone):
        self._store_of = store_of
        self._alone = alone

    def refuse_if_blocked(self, policy, keys, now):
        """Raise ``policy.refusal`` while any of ``keys`` is blocked."""
        refusal = throttle_refusal(policy, self._store_of().blocked_until(keys), now)
        if refusal is not None:
            raise refusal

    def record(self, policy, key, now):
        """Count one attempt; block the key if it is past the free ones.
        Returns when it is blocked until (None: still free)."""
        store = self._store_of()
        row = store.count_attempt(policy, key, now, alone=self._alone)
        until = policy.blocked_until(row["failures"], row["window_start"], now)
        if until is not None:
            store.block(key, until, alone=self._alone)
        return until

    def hit(self, policy, key, now):
        """Refused while blocked; else counted, and refused if this attempt
        is the one past the free ones."""
        self.refuse_if_blocked(policy, [key], now)
        until = self.record(policy, key, now)
        if until is not None:
            raise throttle_refusal(policy, until, now)


class Throttles(DependencyProvider):
    """``self.throttles``: the throttle model applied with the worker's store
    (the ``Database`` provider named ``database_attr``, whose store mixes in
    ``ThrottleStore``). ``alone=True``: attempts are counted in statements
    of their own (recovery); else in the caller's transaction, which the
    caller commits (identity, whose login counts a failure with its audit)."""

    def __init__(self, alone=False, database_attr="db"):
        self.alone = alone
        self.database_attr = database_attr

    def setup(self):
        self.database = sibling(self, self.database_attr)

    def get_dependency(self, worker_ctx):
        stores = self.database.stores
        return _Gate(lambda: stores[worker_ctx], self.alone)
