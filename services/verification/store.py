"""All SQL of the verification service.

Every quota is one statement: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
<under the limit> RETURNING``. The conflicting row is locked by the upsert,
so concurrent requests for one destination queue on that row and exactly
``limit`` of them get a row back; no check-then-insert anywhere. A code
send runs its whole ledger (``quota.py``) in one server-side procedure,
migration ``0004_issue_code_in_one_call.sql``: one round trip.
"""

import uuid

from psycopg2.extras import Json

from services.common.plumbing.context import current_request_id
from services.common.plumbing.db import Store
from services.verification import pumping, quota

__all__ = ["VerificationStore"]

# Not *_SQL: a CALL, which PREPARE cannot check (the integration tests of
# the ledger run it). Named arguments, so the call reads like the procedure.
ISSUE_CODE_CALL = """
CALL issue_code(
    p_address => %(address)s, p_address_window => %(address_window)s,
    p_address_limit => %(address_limit)s, p_fail_window => %(fail_window)s,
    p_captcha_after => %(captcha_after)s, p_captcha_passed => %(captcha_passed)s,
    p_prefix => %(prefix)s, p_prefix_window => %(prefix_window)s,
    p_prefix_limit => %(prefix_limit)s, p_breaker_until => %(breaker_until)s,
    p_destination => %(destination)s, p_budget => %(budget)s, p_day => %(day)s,
    p_now => %(now)s, p_cooldown_edge => %(cooldown_edge)s,
    p_daily_limit => %(daily_limit)s, p_account => %(account)s,
    p_account_window => %(account_window)s, p_account_limit => %(account_limit)s,
    p_channel => %(channel)s, p_purpose => %(purpose)s, p_code_hash => %(code_hash)s,
    p_client_ip => %(client_ip)s, p_client_network => %(client_network)s,
    p_expires_at => %(expires_at)s,
    p_sealed_message => %(sealed_message)s, p_event_id => %(event_id)s,
    p_event_payload => %(event_payload)s, p_request_id => %(request_id)s)
"""

# A delivery the provider refused gives its send back (dependencies.py).
REFUND_DESTINATION_SQL = """
UPDATE destination_quota
   SET sent_today = greatest(sent_today - 1, 0), last_sent_at = NULL
 WHERE destination = %(destination)s AND budget = %(budget)s AND day = %(day)s
"""

# A refusal from a client network (check_code's wrong guesses) counts in a
# shared row: its own statement, committed alone without a WAL flush, so the
# row lock lasts one statement.
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
                 -- a receipt came: the provider took it (never sent twice)
                 AND receipt_state IS NULL
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

# A delivery the provider accepted, in one statement: its attempt recorded,
# the delivery finished and its code (if it is one, not a notice) marked
# delivered. Four round trips before (begin, two or three writes, commit);
# one statement is its own transaction, all or nothing.
# Deliveries the provider took, many in one statement (the delivery
# queue's group commit): each attempt, its delivery and its code, at the
# moment each answer came.
SENT_DELIVERIES_SQL = """
WITH sent AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(nows)s::timestamptz[],
                         %(providers)s::text[], %(expects_receipts)s::boolean[])
              AS s(id, at, provider, expects_receipt)
), attempt AS (
    INSERT INTO delivery_attempts (delivery_id, attempted_at, provider, outcome)
    SELECT id, at, provider, 'sent' FROM sent
), delivery AS (
    UPDATE deliveries d
       SET status = 'sent', sealed_message = NULL, finished_at = s.at,
           lease_until = NULL,
           -- a receipt that overtook this answer stays
           receipt_state = CASE WHEN s.expects_receipt
                                THEN coalesce(d.receipt_state, 'submitted')
                                END
      FROM sent s
     WHERE d.id = s.id
    RETURNING d.code_id, s.at
)
UPDATE codes c SET delivered_at = delivery.at
  FROM delivery
 WHERE c.id = delivery.code_id
"""

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
SELECT destination, purpose, channel, account_id, client_ip, quota_day, issued_at,
       used_at
  FROM codes WHERE id = %(id)s
"""

# A receipt moves a delivery to a final state once: a duplicate, or one
# after the delivery was given up on, changes nothing (no row back).
RECORD_RECEIPT_SQL = """
UPDATE deliveries SET receipt_state = %(state)s, receipt_at = %(now)s
 WHERE id = %(id)s AND status <> 'failed'
   AND (receipt_state IS NULL OR receipt_state = 'submitted')
RETURNING id, code_id, channel, destination, attempts
"""

CODE_DELIVERY_SQL = """
SELECT c.channel, c.destination, c.purpose, c.expires_at, c.used_at, c.dead_at,
       d.status, d.receipt_state, d.receipt_at, d.finished_at, d.attempts
  FROM codes c JOIN deliveries d ON d.code_id = c.id
 WHERE c.id = %(id)s
"""

DELIVERY_ATTEMPTS_SQL = """
SELECT outcome, provider, detail FROM delivery_attempts
 WHERE delivery_id = %(delivery_id)s ORDER BY id
"""

# -- SMS pumping defence (pumping.py) ------------------------------------------
# One watcher judges at a time, whichever instance takes the lock.
TRY_WATCH_LOCK_SQL = (
    "SELECT pg_try_advisory_xact_lock(hashtext('sms_pumping_watch')) AS won"
)

# The pumping watch's tally, counted here: mainland segments (the prefix and
# length pumping.segment_of uses) and stored client networks, each key only
# on codes issued after its last suspension ended (``ended``), and only the
# keys with the volume to be judged — one row per busy key, whatever the
# load. The codes SQL cannot key exactly (another country's segment, a code
# issued before the network was stored) are read by WINDOW_UNKEYED_SQL.
WINDOW_TALLY_SQL = """
WITH recent AS (
    SELECT c.destination, c.client_network, c.issued_at,
           c.used_at IS NOT NULL AS verified,
           coalesce(d.receipt_state = 'delivered', false) AS delivered
      FROM codes c LEFT JOIN deliveries d ON d.code_id = c.id
     WHERE c.channel = 'sms' AND c.issued_at >= %(since)s AND c.issued_at < %(until)s
), keyed AS (
    SELECT 'segment' AS scope, left(destination, %(segment_chars)s) AS key, issued_at,
           verified, delivered
      FROM recent WHERE destination LIKE %(mainland_like)s
    UNION ALL
    SELECT 'network', client_network, issued_at, verified, delivered
      FROM recent WHERE client_network IS NOT NULL
)
SELECT k.scope, k.key, count(*) AS sent, count(*) FILTER (WHERE k.delivered) AS delivered,
       count(*) FILTER (WHERE k.verified) AS verified
  FROM keyed k
  LEFT JOIN unnest(%(ended_scopes)s::text[], %(ended_keys)s::text[],
                   %(ended_at)s::timestamptz[]) AS e(scope, key, at)
         ON e.scope = k.scope AND e.key = k.key
 WHERE e.at IS NULL OR k.issued_at > e.at
 GROUP BY k.scope, k.key
HAVING count(*) >= %(min_volume)s
"""

_MAINLAND_SEGMENTS = {
    "mainland_like": pumping.MAINLAND_PREFIX + "%",
    "segment_chars": pumping.MAINLAND_SEGMENT_CHARS,
}

WINDOW_UNKEYED_SQL = """
SELECT CASE WHEN c.destination NOT LIKE %(mainland_like)s THEN c.destination END
           AS destination,
       CASE WHEN c.client_network IS NULL THEN c.client_ip END AS client_ip,
       c.issued_at, c.used_at IS NOT NULL AS verified,
       d.receipt_state = 'delivered' AS delivered
  FROM codes c LEFT JOIN deliveries d ON d.code_id = c.id
 WHERE c.channel = 'sms' AND c.issued_at >= %(since)s AND c.issued_at < %(until)s
   AND (c.destination NOT LIKE %(mainland_like)s
        OR (c.client_network IS NULL AND c.client_ip IS NOT NULL))
"""

# A segment is a prefix of the destination: a range of the destination index.
SEGMENT_SENDS_SQL = """
SELECT count(*) AS sends FROM codes
 WHERE destination >= %(low)s AND destination < %(high)s
   AND channel = 'sms' AND issued_at >= %(since)s AND issued_at < %(until)s
"""

# A day's sends of the suspect networks; codes issued before the network
# was stored come by address, for the watch to place (pumping.network_of).
NETWORK_SENDS_SQL = """
SELECT client_network, CASE WHEN client_network IS NULL THEN client_ip END AS client_ip,
       count(*) AS sends
  FROM codes
 WHERE channel = 'sms' AND issued_at >= %(since)s AND issued_at < %(until)s
   AND (client_network = ANY(%(networks)s)
        OR (client_network IS NULL AND client_ip IS NOT NULL))
 GROUP BY 1, 2
"""

SUSPENSIONS_SQL = """
SELECT id, scope, key, level, tripped_at, until, figures, lifted_at, lifted_by
  FROM sms_suspensions
 WHERE until > %(since)s
 ORDER BY tripped_at DESC
 LIMIT %(limit)s
"""

SUSPENSION_HISTORY_SQL = """
SELECT scope, key, level, tripped_at, until FROM sms_suspensions
 WHERE tripped_at > %(since)s
"""

# An active suspension is never overwritten (two watchers, a late verdict).
SUSPEND_SQL = """
INSERT INTO sms_suspensions AS s (scope, key, level, tripped_at, until, figures)
VALUES (%(scope)s, %(key)s, %(level)s, %(now)s, %(until)s, %(figures)s)
ON CONFLICT (scope, key) DO UPDATE
   SET level = EXCLUDED.level, tripped_at = EXCLUDED.tripped_at,
       until = EXCLUDED.until, figures = EXCLUDED.figures,
       lifted_at = NULL, lifted_by = NULL
 WHERE s.until <= EXCLUDED.tripped_at
RETURNING id
"""

LIFT_SUSPENSION_SQL = """
UPDATE sms_suspensions
   SET lifted_at = %(now)s, lifted_by = %(actor)s, until = %(now)s
 WHERE id = %(id)s AND until > %(now)s
RETURNING id, scope, key, level, tripped_at, until, figures, lifted_at, lifted_by
"""

SUSPENSION_SQL = """
SELECT id, scope, key, level, tripped_at, until, figures, lifted_at, lifted_by
  FROM sms_suspensions WHERE id = %(id)s
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

    # -- the quota ledger (services/verification/quota.py plans it) -----------
    def issue_code(self, plan, code, event_payload, captcha_passed):
        """Execute ``plan`` and, when every counter allows, store ``code``
        (its hash, sealed message, expiry), its delivery and its
        ``code_issued`` event: one call, one round trip, committed when it
        returns (it commits the worker's open transaction first). Returns
        ``quota.SendOutcome``."""
        prefix, address, account = plan.prefix, plan.address, plan.account
        body = self.event_body("code_issued", {**event_payload, "code_id": 0})
        row = self.fetchone_alone(
            ISSUE_CODE_CALL,
            {
                "address": address.key if address else None,
                "address_window": address.start if address else None,
                "address_limit": address.limit if address else None,
                "fail_window": plan.fail_window,
                "captcha_after": plan.captcha_after,
                "captcha_passed": captcha_passed,
                "prefix": prefix.key,
                "prefix_window": prefix.start,
                "prefix_limit": prefix.limit,
                "breaker_until": plan.breaker_until,
                "destination": plan.destination,
                "budget": plan.budget,
                "day": plan.day,
                "now": code["issued_at"],
                "cooldown_edge": plan.cooldown_edge,
                "daily_limit": plan.daily_limit,
                "account": account.key if account else None,
                "account_window": account.start if account else None,
                "account_limit": account.limit if account else None,
                "channel": code["channel"],
                "purpose": code["purpose"],
                "code_hash": code["code_hash"],
                "client_ip": code["client_ip"],
                "client_network": code.get("client_network"),
                "expires_at": code["expires_at"],
                "sealed_message": code["sealed_message"],
                "event_id": str(uuid.uuid4()),
                "event_payload": body,
                "request_id": current_request_id(),
            },
        )
        outcome = quota.SendOutcome(
            refused=row["refused"],
            code_id=row["code_id"],
            sent_today=row["sent_today"],
            open_until=row["open_until"],
            last_sent_at=row["quota_last_sent_at"],
        )
        if outcome.code_id is not None:
            self.events_committed()
        return outcome

    def refund_destination(self, destination, budget, day):
        self.execute(
            REFUND_DESTINATION_SQL,
            {"destination": destination, "budget": budget, "day": day},
        )

    def bump_shared_counter(self, scope, key, window_start, limit):
        """Count one more in a shared window, alone in its own transaction
        (commits the worker's open one first); ``None`` when at the limit."""
        row = self.fetchone_alone(
            BUMP_SHARED_COUNTER_SQL,
            {"scope": scope, "key": key, "window_start": window_start, "limit": limit},
        )
        return row["count"] if row else None

    def refund_counter(self, scope, key, window_start):
        self.execute(
            REFUND_COUNTER_SQL,
            {"scope": scope, "key": key, "window_start": window_start},
        )

    # -- codes -----------------------------------------------------------
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

    def record_sent_many(self, sent):
        """Deliveries the provider took, ``(delivery id, provider, when,
        expects a receipt)`` each, recorded in one statement of its own
        (commits whatever the worker had open first). A provider with
        receipts leaves its delivery ``submitted`` until one comes."""
        ids, providers, nows, expects = zip(*sent, strict=True)
        self.execute_alone(
            SENT_DELIVERIES_SQL,
            {
                "ids": list(ids),
                "nows": list(nows),
                "providers": list(providers),
                "expects_receipts": list(expects),
            },
        )

    def record_receipt(self, delivery_id, state, now):
        """The delivery moved to ``state``; None when the receipt changes
        nothing (a duplicate, late, or for a delivery given up on)."""
        return self.fetchone(
            RECORD_RECEIPT_SQL, {"id": delivery_id, "state": state, "now": now}
        )

    def code_delivery(self, code_id):
        return self.fetchone(CODE_DELIVERY_SQL, {"id": code_id})

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

    # -- SMS pumping defence ----------------------------------------------
    def try_watch_lock(self):
        """This transaction judges pumping; False when another instance does."""
        return self.fetchone(TRY_WATCH_LOCK_SQL)["won"]

    def window_tally(self, since, until, ended, min_volume):
        """``(scope, key, sent, delivered, verified)`` rows of the keys SQL
        can name with at least ``min_volume`` codes in ``[since, until)``;
        ``ended``: ``{(scope, key): when its last suspension ended}``."""
        return self.fetchall(
            WINDOW_TALLY_SQL,
            {
                "since": since,
                "until": until,
                "ended_scopes": [scope for scope, _ in ended],
                "ended_keys": [key for _, key in ended],
                "ended_at": list(ended.values()),
                "min_volume": min_volume,
                **_MAINLAND_SEGMENTS,
            },
        )

    def window_unkeyed(self, since, until):
        """The window's codes ``window_tally`` could not key, as rows for
        ``pumping.tally``: ``destination`` only when not +86, ``client_ip``
        only when no network was stored."""
        return self.fetchall(
            WINDOW_UNKEYED_SQL,
            {"since": since, "until": until, **_MAINLAND_SEGMENTS},
        )

    def segment_sends(self, segment, since, until):
        return self.fetchone(
            SEGMENT_SENDS_SQL,
            # "~" sorts after every digit: [segment, segment~) is the prefix.
            {"low": segment, "high": segment + "~", "since": since, "until": until},
        )["sends"]

    def network_sends(self, networks, since, until):
        return self.fetchall(
            NETWORK_SENDS_SQL,
            {"networks": list(networks), "since": since, "until": until},
        )

    def suspensions(self, since, limit=500):
        """Suspensions in force after ``since``, newest first."""
        return self.fetchall(SUSPENSIONS_SQL, {"since": since, "limit": limit})

    def suspension_history(self, since):
        return self.fetchall(SUSPENSION_HISTORY_SQL, {"since": since})

    def suspend(self, scope, key, level, now, until, figures):
        """The new suspension's id; None when the key is suspended already."""
        row = self.fetchone(
            SUSPEND_SQL,
            {
                "scope": scope,
                "key": key,
                "level": level,
                "now": now,
                "until": until,
                "figures": Json(figures),
            },
        )
        return row["id"] if row else None

    def lift_suspension(self, suspension_id, now, actor):
        return self.fetchone(
            LIFT_SUSPENSION_SQL, {"id": suspension_id, "now": now, "actor": actor}
        )

    def suspension(self, suspension_id):
        return self.fetchone(SUSPENSION_SQL, {"id": suspension_id})

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
