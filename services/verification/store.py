"""All SQL of the verification service.

Every quota is one statement: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
<under the limit> RETURNING``. The conflicting row is locked by the upsert,
so concurrent requests for one destination queue on that row and exactly
``limit`` of them get a row back; no check-then-insert anywhere.
"""

from services.common.plumbing.db import Store
from services.verification import quota

__all__ = ["VerificationStore"]

RESERVE_DESTINATION_SQL = """
INSERT INTO destination_quota AS q (destination, budget, day, sent_today, last_sent_at)
VALUES (%(destination)s, %(budget)s, %(day)s, 1, %(now)s)
ON CONFLICT (destination, budget) DO UPDATE
   SET sent_today = CASE WHEN q.day = EXCLUDED.day THEN q.sent_today + 1 ELSE 1 END,
       day = EXCLUDED.day,
       last_sent_at = EXCLUDED.last_sent_at
 WHERE (%(cooldown_edge)s::timestamptz IS NULL OR q.last_sent_at IS NULL
        OR q.last_sent_at <= %(cooldown_edge)s)
   AND (q.day <> EXCLUDED.day OR q.sent_today < %(limit)s)
RETURNING sent_today
"""

DESTINATION_QUOTA_SQL = """
SELECT day, sent_today, last_sent_at FROM destination_quota
 WHERE destination = %(destination)s AND budget = %(budget)s
"""

REFUND_DESTINATION_SQL = """
UPDATE destination_quota
   SET sent_today = greatest(sent_today - 1, 0), last_sent_at = NULL
 WHERE destination = %(destination)s AND budget = %(budget)s AND day = %(day)s
"""

BUMP_COUNTER_SQL = """
INSERT INTO rate_counters AS c (scope, key, window_start, count)
VALUES (%(scope)s, %(key)s, %(window_start)s, 1)
ON CONFLICT (scope, key, window_start) DO UPDATE
   SET count = c.count + 1
 WHERE c.count < %(limit)s
RETURNING count
"""

# The per-IP and per-prefix rows are shared by many requests (one school
# NAT, one mobile network). Each is bumped or refunded by a statement of its
# own that commits alone (autocommit, no WAL flush): its row lock lasts one
# statement, and a statement that locks a single row cannot be part of a
# deadlock. (Bumping both in one statement, and refunding them in another
# transaction, deadlocked under bursts from one address.)
BUMP_SHARED_COUNTER_SQL = """
WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
INSERT INTO rate_counters AS c (scope, key, window_start, count)
SELECT %(scope)s, %(key)s, %(window_start)s, 1 FROM relaxed
ON CONFLICT (scope, key, window_start) DO UPDATE
   SET count = c.count + 1
 WHERE c.count < %(limit)s
RETURNING count
"""

# For per-account rows, inside the transaction that undoes the send.
REFUND_COUNTER_SQL = """
UPDATE rate_counters SET count = greatest(count - 1, 0)
 WHERE scope = %(scope)s AND key = %(key)s AND window_start = %(window_start)s
"""

# One send's shared rows in one statement, locked in one global order
# (scope, key): every statement that locks more than one of these rows takes
# them sorted the same way, so no two can wait on each other in a cycle.
# INSERT ... SELECT ... ORDER BY inserts (and locks conflicting rows) in the
# sorted order. A refused row is absent from RETURNING.
BUMP_SHARED_COUNTERS_SQL = """
WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
INSERT INTO rate_counters AS c (scope, key, window_start, count)
SELECT w.scope, w.key, w.window_start, 1
  FROM (VALUES (%(scope_a)s, %(key_a)s, %(window_a)s::timestamptz),
               (%(scope_b)s, %(key_b)s, %(window_b)s::timestamptz))
       AS w (scope, key, window_start), relaxed
 WHERE w.key IS NOT NULL
 ORDER BY w.scope, w.key
ON CONFLICT (scope, key, window_start) DO UPDATE
   SET count = c.count + 1
 WHERE c.count < CASE c.scope WHEN %(scope_a)s::text THEN %(limit_a)s::integer
                                   ELSE %(limit_b)s::integer END
RETURNING scope, count
"""

REFUND_SHARED_COUNTER_SQL = """
WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
UPDATE rate_counters SET count = greatest(count - 1, 0)
 WHERE scope = %(scope)s AND key = %(key)s AND window_start = %(window_start)s
   AND EXISTS (SELECT 1 FROM relaxed)
RETURNING count
"""

COUNTER_VALUE_SQL = """
SELECT count FROM rate_counters
 WHERE scope = %(scope)s AND key = %(key)s AND window_start = %(window_start)s
"""

BREAKER_SQL = "SELECT open_until FROM breakers WHERE prefix = %(prefix)s"

TRIP_BREAKER_SQL = """
INSERT INTO breakers (prefix, open_until, tripped_at)
VALUES (%(prefix)s, %(open_until)s, %(now)s)
ON CONFLICT (prefix) DO UPDATE
   SET open_until = EXCLUDED.open_until, tripped_at = EXCLUDED.tripped_at
"""

INSERT_CODE_SQL = """
INSERT INTO codes (channel, destination, purpose, code_hash, account_id, client_ip,
                   quota_day, issued_at, expires_at)
VALUES (%(channel)s, %(destination)s, %(purpose)s, %(code_hash)s, %(account_id)s,
        %(client_ip)s, %(quota_day)s, %(issued_at)s, %(expires_at)s)
RETURNING id
"""

INSERT_DELIVERY_SQL = """
INSERT INTO deliveries (code_id, channel, destination, sealed_message,
                        next_attempt_at, created_at)
VALUES (%(code_id)s, %(channel)s, %(destination)s, %(sealed_message)s, %(now)s, %(now)s)
RETURNING id
"""

INSERT_NOTICE_SQL = """
INSERT INTO deliveries (code_id, channel, destination, sealed_message,
                        next_attempt_at, created_at, notice_key)
VALUES (NULL, %(channel)s, %(destination)s, %(sealed_message)s, %(now)s, %(now)s,
        %(notice_key)s)
ON CONFLICT (notice_key) WHERE notice_key IS NOT NULL DO NOTHING
RETURNING id
"""

CANDIDATE_CODES_SQL = """
SELECT id, code_hash, expires_at, used_at, dead_at, account_id
  FROM codes
 WHERE destination = %(destination)s AND purpose = %(purpose)s
   AND issued_at > %(since)s
 ORDER BY issued_at DESC
 LIMIT 50
"""

CONSUME_CODE_SQL = """
UPDATE codes SET used_at = %(now)s
 WHERE id = %(id)s AND used_at IS NULL AND dead_at IS NULL
"""

KILL_LIVE_CODES_SQL = """
UPDATE codes SET dead_at = %(now)s
 WHERE destination = %(destination)s AND purpose = %(purpose)s
   AND used_at IS NULL AND dead_at IS NULL
"""

KILL_CODE_SQL = (
    "UPDATE codes SET dead_at = %(now)s WHERE id = %(id)s AND dead_at IS NULL"
)

GUESS_COUNTER_SQL = """
SELECT attempts, lockouts, lockout_day, locked_until, updated_at
  FROM guess_counters WHERE destination = %(destination)s AND purpose = %(purpose)s
"""

COUNT_ATTEMPT_SQL = """
INSERT INTO guess_counters AS g (destination, purpose, attempts, updated_at)
VALUES (%(destination)s, %(purpose)s, 1, %(now)s)
ON CONFLICT (destination, purpose) DO UPDATE
   SET attempts = CASE WHEN g.updated_at < %(stale_before)s THEN 1 ELSE g.attempts + 1 END,
       updated_at = EXCLUDED.updated_at
RETURNING attempts, lockouts, lockout_day, locked_until
"""

RESET_ATTEMPTS_SQL = """
UPDATE guess_counters SET attempts = 0, updated_at = %(now)s
 WHERE destination = %(destination)s AND purpose = %(purpose)s
"""

RECORD_LOCKOUT_SQL = """
UPDATE guess_counters
   SET attempts = 0,
       lockouts = CASE WHEN lockout_day = %(day)s THEN lockouts + 1 ELSE 1 END,
       lockout_day = %(day)s,
       locked_until = %(locked_until)s,
       updated_at = %(now)s
 WHERE destination = %(destination)s AND purpose = %(purpose)s
"""

CLAIM_DELIVERIES_SQL = """
UPDATE deliveries SET lease_until = %(lease_until)s, attempts = attempts + 1
 WHERE id IN (SELECT id FROM deliveries
               WHERE status = 'pending' AND next_attempt_at <= %(now)s
                 AND (lease_until IS NULL OR lease_until < %(now)s)
               ORDER BY next_attempt_at
               LIMIT %(batch)s
                 FOR UPDATE SKIP LOCKED)
RETURNING id, code_id, channel, destination, sealed_message, attempts
"""

RECORD_ATTEMPT_SQL = """
INSERT INTO delivery_attempts (delivery_id, attempted_at, provider, outcome, detail)
VALUES (%(delivery_id)s, %(now)s, %(provider)s, %(outcome)s, %(detail)s)
"""

MARK_DELIVERY_SENT_SQL = """
UPDATE deliveries SET status = 'sent', sealed_message = NULL, finished_at = %(now)s,
                      lease_until = NULL
 WHERE id = %(id)s
"""

MARK_CODE_DELIVERED_SQL = (
    "UPDATE codes SET delivered_at = %(now)s WHERE id = %(code_id)s"
)

RETRY_DELIVERY_SQL = """
UPDATE deliveries SET next_attempt_at = %(next_attempt_at)s, lease_until = NULL,
                      last_error = %(error)s
 WHERE id = %(id)s
"""

FAIL_DELIVERY_SQL = """
UPDATE deliveries SET status = 'failed', sealed_message = NULL, finished_at = %(now)s,
                      lease_until = NULL, last_error = %(error)s
 WHERE id = %(id)s AND status = 'pending'
"""

CODE_FOR_REFUND_SQL = """
SELECT destination, purpose, channel, account_id, client_ip, quota_day, issued_at
  FROM codes WHERE id = %(id)s
"""

DELIVERY_ATTEMPTS_SQL = """
SELECT outcome, provider, detail FROM delivery_attempts
 WHERE delivery_id = %(delivery_id)s ORDER BY id
"""

INSERT_CAPTCHA_SQL = """
INSERT INTO captchas (id, answer_hash, expires_at) VALUES (%(id)s, %(answer_hash)s, %(expires_at)s)
"""

CONSUME_CAPTCHA_SQL = """
UPDATE captchas SET used_at = %(now)s
 WHERE id = %(id)s AND used_at IS NULL AND expires_at > %(now)s
RETURNING answer_hash
"""

PURGE_CAPTCHAS_SQL = "DELETE FROM captchas WHERE expires_at < %(before)s"

# Retention: a code is over at its expiry at the latest (used or killed
# sooner); it and its delivery go once that is older than the retention.
# Notices (no code) go once delivered or given up on as long ago.
PURGE_OLD_ATTEMPTS_SQL = """
DELETE FROM delivery_attempts a
 USING deliveries d
 WHERE a.delivery_id = d.id
   AND ((d.code_id IS NULL AND d.status <> 'pending' AND d.finished_at < %(before)s)
        OR d.code_id IN (SELECT id FROM codes WHERE expires_at < %(before)s))
"""
PURGE_OLD_DELIVERIES_SQL = """
DELETE FROM deliveries
 WHERE (code_id IS NULL AND status <> 'pending' AND finished_at < %(before)s)
    OR code_id IN (SELECT id FROM codes WHERE expires_at < %(before)s)
"""
PURGE_OLD_CODES_SQL = "DELETE FROM codes WHERE expires_at < %(before)s"
PURGE_COUNTERS_SQL = "DELETE FROM rate_counters WHERE window_start < %(before)s"


class VerificationStore(Store):
    """Codes, quota ledger, deliveries, captchas."""

    # -- quotas ---------------------------------------------------------
    def reserve_destination(self, destination, budget, day, now, cooldown_edge, limit):
        row = self.fetchone(
            RESERVE_DESTINATION_SQL,
            {
                "destination": destination,
                "budget": budget,
                "day": day,
                "now": now,
                "cooldown_edge": cooldown_edge,
                "limit": limit,
            },
        )
        return row["sent_today"] if row else None

    def destination_quota(self, destination, budget):
        return self.fetchone(
            DESTINATION_QUOTA_SQL, {"destination": destination, "budget": budget}
        )

    def refund_destination(self, destination, budget, day):
        self.execute(
            REFUND_DESTINATION_SQL,
            {"destination": destination, "budget": budget, "day": day},
        )

    def bump_counter(self, scope, key, window_start, limit):
        row = self.fetchone(
            BUMP_COUNTER_SQL,
            {"scope": scope, "key": key, "window_start": window_start, "limit": limit},
        )
        return row["count"] if row else None

    def bump_shared_counter(self, scope, key, window_start, limit):
        """Count one more in a shared window, alone in its own transaction
        (commits the worker's open one first); ``None`` when at the limit."""
        row = self.fetchone_alone(
            BUMP_SHARED_COUNTER_SQL,
            {"scope": scope, "key": key, "window_start": window_start, "limit": limit},
        )
        return row["count"] if row else None

    def counter_value(self, scope, key, window_start):
        row = self.fetchone(
            COUNTER_VALUE_SQL,
            {"scope": scope, "key": key, "window_start": window_start},
        )
        return row["count"] if row else 0

    def bump_shared_counters(self, first, second):
        """Bump two shared windows ``(scope, key, window_start, limit)`` (a
        ``None`` key is skipped) alone in one autocommitted statement;
        ``{scope: count or None}`` with None where that limit refused."""
        (scope_a, key_a, window_a, limit_a), (scope_b, key_b, window_b, limit_b) = (
            first,
            second,
        )
        rows = self.fetchall_alone(
            BUMP_SHARED_COUNTERS_SQL,
            {
                "scope_a": scope_a,
                "key_a": key_a,
                "window_a": window_a,
                "limit_a": limit_a,
                "scope_b": scope_b,
                "key_b": key_b,
                "window_b": window_b,
                "limit_b": limit_b,
            },
        )
        counts = {row["scope"]: row["count"] for row in rows}
        return {scope_a: counts.get(scope_a), scope_b: counts.get(scope_b)}

    # -- the quota ledger (services/verification/quota.py plans it) -----------
    def take_shared(self, plan):
        """Take ``plan.shared`` in one autocommitted statement (row locks in
        (scope, key) order); when one refuses, give back what was taken.
        Returns ``quota.SharedOutcome``."""
        windows = list(plan.shared) + [quota.Window("ip_hour", None, None, 0)]
        first, second = windows[0], windows[1]
        counts = self.bump_shared_counters(
            (first.scope, first.key, first.start, first.limit),
            (second.scope, second.key, second.start, second.limit),
        )
        outcome = quota.after_shared(plan, counts)
        self.give_back(outcome.give_back)
        return outcome

    def give_back(self, windows):
        """Return one to each shared window (alone, its own transaction)."""
        for window in windows:
            self.refund_shared_counter(window.scope, window.key, window.start)

    def take_send_quota(self, plan, now):
        """The send's own counters in the code's transaction: the
        destination's budget row (its lock queues concurrent sends to one
        destination across instances), then the account's day.
        ``(sent_today, None)`` or ``(None, (refused, destination_quota))``."""
        sent_today = self.reserve_destination(
            plan.destination, plan.budget, plan.day, now, plan.cooldown_edge,
            plan.daily_limit,
        )  # fmt: skip
        if sent_today is None:
            return None, (
                "destination",
                self.destination_quota(plan.destination, plan.budget),
            )
        account = plan.account
        if account and self.bump_counter(account.scope, account.key, account.start,
                                         account.limit) is None:  # fmt: skip
            return None, ("account", None)
        return sent_today, None

    def refund_counter(self, scope, key, window_start):
        self.execute(
            REFUND_COUNTER_SQL,
            {"scope": scope, "key": key, "window_start": window_start},
        )

    def refund_shared_counter(self, scope, key, window_start):
        """Give one back to a shared window, alone in its own transaction."""
        self.fetchone_alone(
            REFUND_SHARED_COUNTER_SQL,
            {"scope": scope, "key": key, "window_start": window_start},
        )

    def breaker_open_until(self, prefix):
        row = self.fetchone(BREAKER_SQL, {"prefix": prefix})
        return row["open_until"] if row else None

    def trip_breaker(self, prefix, open_until, now):
        self.execute(
            TRIP_BREAKER_SQL, {"prefix": prefix, "open_until": open_until, "now": now}
        )

    # -- codes -----------------------------------------------------------
    def insert_code(self, **fields):
        return self.fetchone(INSERT_CODE_SQL, fields)["id"]

    def candidate_codes(self, destination, purpose, since):
        return self.fetchall(
            CANDIDATE_CODES_SQL,
            {"destination": destination, "purpose": purpose, "since": since},
        )

    def consume_code(self, code_id, now):
        """True if this call used the code; False if someone else already did."""
        return self.execute(CONSUME_CODE_SQL, {"id": code_id, "now": now}).rowcount == 1

    def kill_live_codes(self, destination, purpose, now):
        self.execute(
            KILL_LIVE_CODES_SQL,
            {"destination": destination, "purpose": purpose, "now": now},
        )

    def kill_code(self, code_id, now):
        self.execute(KILL_CODE_SQL, {"id": code_id, "now": now})

    def guess_counter(self, destination, purpose):
        return self.fetchone(
            GUESS_COUNTER_SQL, {"destination": destination, "purpose": purpose}
        )

    def count_attempt(self, destination, purpose, now, stale_before):
        return self.fetchone(
            COUNT_ATTEMPT_SQL,
            {
                "destination": destination,
                "purpose": purpose,
                "now": now,
                "stale_before": stale_before,
            },
        )

    def reset_attempts(self, destination, purpose, now):
        self.execute(
            RESET_ATTEMPTS_SQL,
            {"destination": destination, "purpose": purpose, "now": now},
        )

    def record_lockout(self, destination, purpose, day, locked_until, now):
        self.execute(
            RECORD_LOCKOUT_SQL,
            {
                "destination": destination,
                "purpose": purpose,
                "day": day,
                "locked_until": locked_until,
                "now": now,
            },
        )

    def code_for_refund(self, code_id):
        return self.fetchone(CODE_FOR_REFUND_SQL, {"id": code_id})

    # -- deliveries --------------------------------------------------------
    def insert_delivery(self, code_id, channel, destination, sealed_message, now):
        return self.fetchone(
            INSERT_DELIVERY_SQL,
            {
                "code_id": code_id,
                "channel": channel,
                "destination": destination,
                "sealed_message": sealed_message,
                "now": now,
            },
        )["id"]

    def claim_deliveries(self, now, lease_until, batch):
        return self.fetchall(
            CLAIM_DELIVERIES_SQL,
            {"now": now, "lease_until": lease_until, "batch": batch},
        )

    def record_attempt(self, delivery_id, now, provider, outcome, detail):
        self.execute(
            RECORD_ATTEMPT_SQL,
            {
                "delivery_id": delivery_id,
                "now": now,
                "provider": provider,
                "outcome": outcome,
                "detail": detail,
            },
        )

    def insert_notice(self, channel, destination, sealed_message, notice_key, now):
        """Queue a notice once per ``notice_key``; None when already queued."""
        row = self.fetchone(
            INSERT_NOTICE_SQL,
            {
                "channel": channel,
                "destination": destination,
                "sealed_message": sealed_message,
                "notice_key": notice_key,
                "now": now,
            },
        )
        return row["id"] if row else None

    def mark_delivered(self, delivery_id, code_id, now):
        self.execute(MARK_DELIVERY_SENT_SQL, {"id": delivery_id, "now": now})
        if code_id is not None:
            self.execute(MARK_CODE_DELIVERED_SQL, {"code_id": code_id, "now": now})

    def retry_delivery(self, delivery_id, next_attempt_at, error):
        self.execute(
            RETRY_DELIVERY_SQL,
            {"id": delivery_id, "next_attempt_at": next_attempt_at, "error": error},
        )

    def fail_delivery(self, delivery_id, now, error):
        return (
            self.execute(
                FAIL_DELIVERY_SQL, {"id": delivery_id, "now": now, "error": error}
            ).rowcount
            == 1
        )

    def delivery_attempts(self, delivery_id):
        return self.fetchall(DELIVERY_ATTEMPTS_SQL, {"delivery_id": delivery_id})

    # -- captchas ----------------------------------------------------------
    def insert_captcha(self, captcha_id, answer_hash, expires_at):
        self.execute(
            INSERT_CAPTCHA_SQL,
            {"id": captcha_id, "answer_hash": answer_hash, "expires_at": expires_at},
        )

    def consume_captcha(self, captcha_id, now):
        row = self.fetchone(CONSUME_CAPTCHA_SQL, {"id": captcha_id, "now": now})
        return row["answer_hash"] if row else None

    def purge(self, before):
        self.execute(PURGE_CAPTCHAS_SQL, {"before": before})
        self.execute(PURGE_COUNTERS_SQL, {"before": before})

    def purge_retained(self, before):
        """Codes over, and notices finished, before ``before``: ``(codes, deliveries)``."""
        self.execute(PURGE_OLD_ATTEMPTS_SQL, {"before": before})
        deliveries = self.execute(PURGE_OLD_DELIVERIES_SQL, {"before": before}).rowcount
        codes = self.execute(PURGE_OLD_CODES_SQL, {"before": before}).rowcount
        return codes, deliveries
