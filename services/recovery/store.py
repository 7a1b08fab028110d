"""All SQL of the recovery service."""

from psycopg2.extras import Json, register_uuid

from services.common.contract.errors import Conflict
from services.common.plumbing.context import current_request_id
from services.common.plumbing.db import Store
from services.common.plumbing.throttle_store import ThrottleStore

__all__ = ["RecoveryStore"]

register_uuid()

FLOW_COLUMNS = """id, account_id, school_code, status, requester_token_hash, old_phone_hash,
old_phone_hint, old_phone_failures, sealed_requester, sealed_new_phone, new_password_hash,
share_token_hash, vouches_needed, expires_at, created_at, updated_at, completed_at,
cancel_until, handed_over_at,
(SELECT count(*) FROM vouches v WHERE v.recovery_id = phone_recoveries.id)::int AS vouches"""

INSERT_FLOW_SQL = """
INSERT INTO phone_recoveries (id, account_id, school_code, status, requester_token_hash,
    old_phone_hash, old_phone_hint, sealed_requester, vouches_needed, expires_at,
    created_at, updated_at)
VALUES (%(id)s, %(account_id)s, %(school_code)s, 'matched', %(requester_token_hash)s,
    %(old_phone_hash)s, %(old_phone_hint)s, %(sealed_requester)s, %(vouches_needed)s,
    %(expires_at)s, %(now)s, %(now)s)
"""

FLOW_SQL = f"SELECT {FLOW_COLUMNS} FROM phone_recoveries WHERE id = %(id)s"
FLOW_FOR_UPDATE_SQL = FLOW_SQL + " FOR UPDATE"

# Before a new flow of an account: its expired open flow is closed, a flow
# still at step 1 is superseded; the answer says whether one past step 2 is
# still open (then the new start is a shadow flow).
SUPERSEDE_OPEN_SQL = """
UPDATE phone_recoveries
   SET status = CASE WHEN expires_at <= %(now)s THEN 'expired' ELSE 'cancelled' END,
       updated_at = %(now)s, sealed_new_phone = NULL, new_password_hash = NULL,
       sealed_requester = NULL, share_token_hash = NULL
 WHERE account_id = %(account_id)s
   AND (status = 'matched'
        OR (status = 'awaiting_vouches' AND expires_at <= %(now)s))
"""

OPEN_PAST_STEP_TWO_SQL = """
SELECT 1 FROM phone_recoveries
 WHERE account_id = %(account_id)s AND status = 'awaiting_vouches'
"""

OLD_PHONE_FAILED_SQL = """
UPDATE phone_recoveries
   SET old_phone_failures = old_phone_failures + 1,
       status = CASE WHEN old_phone_failures + 1 >= %(limit)s THEN 'failed' ELSE status END,
       updated_at = %(now)s
 WHERE id = %(id)s
RETURNING old_phone_failures, status
"""

SET_NEW_PHONE_SQL = """
UPDATE phone_recoveries
   SET status = 'awaiting_vouches', sealed_new_phone = %(sealed_new_phone)s,
       new_password_hash = %(new_password_hash)s, share_token_hash = %(share_token_hash)s,
       expires_at = %(expires_at)s, updated_at = %(now)s
 WHERE id = %(id)s AND status = 'matched'
"""

SET_STATUS_SQL = """
UPDATE phone_recoveries SET status = %(status)s, updated_at = %(now)s
 WHERE id = %(id)s
"""

CLOSE_FLOW_SQL = """
UPDATE phone_recoveries
   SET status = %(status)s, updated_at = %(now)s,
       sealed_new_phone = NULL, new_password_hash = NULL, sealed_requester = NULL,
       share_token_hash = NULL
 WHERE id = %(id)s
"""

COMPLETE_FLOW_SQL = """
UPDATE phone_recoveries
   SET status = 'completed', completed_at = %(now)s, cancel_until = %(cancel_until)s,
       share_token_hash = NULL, updated_at = %(now)s
 WHERE id = %(id)s AND status = 'awaiting_vouches'
"""

# The hand-over to identity: read once the flow is completed; the secrets
# are wiped when identity says it applied them (mark_handed_over).
MARK_HANDED_OVER_SQL = """
UPDATE phone_recoveries
   SET handed_over_at = %(now)s, sealed_new_phone = NULL, new_password_hash = NULL
 WHERE id = %(id)s AND handed_over_at IS NULL
"""

EXPIRE_DUE_SQL = """
UPDATE phone_recoveries
   SET status = 'expired', updated_at = %(now)s,
       sealed_new_phone = NULL, new_password_hash = NULL, sealed_requester = NULL,
       share_token_hash = NULL
 WHERE status IN ('matched', 'awaiting_vouches') AND expires_at <= %(now)s
RETURNING id
"""

INSERT_VOUCH_SQL = """
INSERT INTO vouches (recovery_id, voucher_id, at) VALUES (%(recovery_id)s, %(voucher_id)s, %(now)s)
ON CONFLICT DO NOTHING
RETURNING voucher_id
"""

HAS_VOUCHED_SQL = """
SELECT 1 FROM vouches WHERE recovery_id = %(recovery_id)s AND voucher_id = %(voucher_id)s
"""

# A cap: the row is bumped only while under it; no row back = cap reached.
BUMP_COUNTER_SQL = """
INSERT INTO counters AS c (subject, period, count) VALUES (%(subject)s, %(period)s, 1)
ON CONFLICT (subject, period) DO UPDATE SET count = c.count + 1
 WHERE c.count < %(cap)s
RETURNING count
"""

COUNTER_SQL = (
    "SELECT count FROM counters WHERE subject = %(subject)s AND period = %(period)s"
)

# -- duplicate-ID reviews and assistance --------------------------------------------
REVIEW_COLUMNS = """id, kind, account_id, status, photo_width, photo_height, reason,
decided_by, ref_id, created_at, decided_at"""

INSERT_REVIEW_SQL = """
INSERT INTO reviews (id, kind, account_id, status, sealed_photo, photo_width, photo_height,
                     ref_id, created_at)
VALUES (%(id)s, %(kind)s, %(account_id)s, 'open', %(sealed_photo)s, %(width)s, %(height)s,
        %(ref_id)s, %(now)s)
"""

REVIEW_SQL = f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = %(id)s"
REVIEW_FOR_UPDATE_SQL = REVIEW_SQL + " FOR UPDATE"
REVIEW_PHOTO_SQL = "SELECT sealed_photo FROM reviews WHERE id = %(id)s"

REVIEWS_SQL = f"""
SELECT {REVIEW_COLUMNS}, count(*) OVER () AS total FROM reviews
 WHERE status = %(status)s
 ORDER BY created_at, id
 LIMIT %(limit)s OFFSET %(offset)s
"""

REVIEWS_OF_ACCOUNT_SQL = f"""
SELECT {REVIEW_COLUMNS} FROM reviews WHERE account_id = %(account_id)s AND kind = %(kind)s
 ORDER BY created_at DESC LIMIT 20
"""

DECIDE_REVIEW_SQL = """
UPDATE reviews SET status = %(status)s, reason = %(reason)s, decided_by = %(decided_by)s,
       decided_at = %(now)s, purge_after = %(purge_after)s
 WHERE id = %(id)s AND status = 'open'
"""

# Photos are kept only until the decision plus retention.
PURGE_PHOTOS_SQL = """
UPDATE reviews SET sealed_photo = NULL
 WHERE sealed_photo IS NOT NULL AND purge_after IS NOT NULL AND purge_after <= %(now)s
RETURNING id
"""

INSERT_ASSISTANCE_SQL = """
INSERT INTO assistance_requests (id, account_id, classmate_id, status, created_at)
VALUES (%(id)s, %(account_id)s, %(classmate_id)s, 'open', %(now)s)
"""

ASSISTANCE_FOR_UPDATE_SQL = """
SELECT id, account_id, classmate_id, status, created_at, answered_at
  FROM assistance_requests WHERE id = %(id)s FOR UPDATE
"""

ASSISTANCE_OF_ACCOUNT_SQL = """
SELECT id, status, created_at, answered_at FROM assistance_requests
 WHERE account_id = %(account_id)s ORDER BY created_at DESC LIMIT 20
"""

ANSWER_ASSISTANCE_SQL = """
UPDATE assistance_requests SET status = %(status)s, answered_at = %(now)s
 WHERE id = %(id)s AND status = 'open'
"""

# The account's one live resolution. An approval of an account whose move is
# only holding (or was cancelled) makes it apply now; one of an account
# already applied or disputed finds it and does nothing.
INSERT_RESOLUTION_SQL = """
INSERT INTO duplicate_resolutions (account_id, resolution_id, via, at, status,
                                   decided_at)
VALUES (%(account_id)s, %(resolution_id)s, %(via)s, %(now)s, 'applied', %(now)s)
ON CONFLICT (account_id) DO UPDATE
   SET via = EXCLUDED.via, status = 'applied', decided_at = EXCLUDED.decided_at,
       resolution_id = CASE WHEN duplicate_resolutions.status = 'cancelled'
                            THEN EXCLUDED.resolution_id
                            ELSE duplicate_resolutions.resolution_id END
 WHERE duplicate_resolutions.status IN ('holding', 'cancelled')
RETURNING resolution_id
"""

# Classmates agreed: the move waits for the dispute window (a cancelled one
# may be tried again; anything else is already under way).
HOLD_RESOLUTION_SQL = """
INSERT INTO duplicate_resolutions (account_id, resolution_id, via, at, status,
                                   effective_at, holder_id)
VALUES (%(account_id)s, %(resolution_id)s, %(via)s, %(now)s, 'holding',
        %(effective_at)s, %(holder_id)s)
ON CONFLICT (account_id) DO UPDATE
   SET resolution_id = EXCLUDED.resolution_id, via = EXCLUDED.via, at = EXCLUDED.at,
       status = 'holding', effective_at = EXCLUDED.effective_at,
       holder_id = EXCLUDED.holder_id, decided_at = NULL
 WHERE duplicate_resolutions.status = 'cancelled'
RETURNING resolution_id
"""

RESOLUTION_COLUMNS = """account_id, resolution_id, via, at, status, effective_at,
holder_id, decided_at"""

RESOLUTION_SQL = f"""
SELECT {RESOLUTION_COLUMNS} FROM duplicate_resolutions
 WHERE account_id = %(account_id)s
"""

RESOLUTION_BY_ID_SQL = f"""
SELECT {RESOLUTION_COLUMNS} FROM duplicate_resolutions
 WHERE resolution_id = %(resolution_id)s FOR UPDATE
"""

SET_RESOLUTION_STATUS_SQL = f"""
UPDATE duplicate_resolutions SET status = %(status)s, decided_at = %(now)s
 WHERE resolution_id = %(resolution_id)s AND status = ANY(%(from_states)s::text[])
RETURNING {RESOLUTION_COLUMNS}
"""

# Holds whose window ended undisputed take effect (SKIP LOCKED: instances
# share the work, none waits on another).
DUE_RESOLUTIONS_SQL = f"""
UPDATE duplicate_resolutions SET status = 'applied', decided_at = %(now)s
 WHERE account_id IN (SELECT account_id FROM duplicate_resolutions
                       WHERE status = 'holding' AND effective_at <= %(now)s
                       ORDER BY effective_at LIMIT 100 FOR UPDATE SKIP LOCKED)
RETURNING {RESOLUTION_COLUMNS}
"""

APPROVED_HELPERS_SQL = """
SELECT count(DISTINCT classmate_id) AS helpers FROM assistance_requests
 WHERE account_id = %(account_id)s AND status = 'approved'
"""

HAS_HELPED_SQL = """
SELECT 1 FROM assistance_requests
 WHERE account_id = %(account_id)s AND classmate_id = %(classmate_id)s
   AND status = 'approved'
"""

# -- inbox --------------------------------------------------------------------------------
INBOX_COLUMNS = """id, account_id, kind, ref_id, sealed_params, needs_answer, answer,
created_at, read_at, answered_at"""

INSERT_MESSAGE_SQL = """
INSERT INTO inbox_messages (id, account_id, kind, ref_id, sealed_params, needs_answer,
                            created_at)
VALUES (%(id)s, %(account_id)s, %(kind)s, %(ref_id)s, %(sealed_params)s,
        %(needs_answer)s, %(now)s)
"""

INBOX_SQL = f"""
SELECT {INBOX_COLUMNS} FROM inbox_messages WHERE account_id = %(account_id)s
 ORDER BY created_at DESC, id LIMIT %(limit)s OFFSET %(offset)s
"""

INBOX_COUNTS_SQL = """
SELECT count(*)::int AS total,
       count(*) FILTER (WHERE read_at IS NULL)::int AS unread,
       count(*) FILTER (WHERE needs_answer AND answered_at IS NULL)::int AS to_answer
  FROM inbox_messages WHERE account_id = %(account_id)s
"""

MARK_READ_SQL = """
UPDATE inbox_messages SET read_at = %(now)s
 WHERE account_id = %(account_id)s AND id = ANY(%(ids)s::uuid[]) AND read_at IS NULL
"""

MESSAGE_FOR_UPDATE_SQL = f"""
SELECT {INBOX_COLUMNS} FROM inbox_messages
 WHERE id = %(id)s AND account_id = %(account_id)s FOR UPDATE
"""

ANSWER_MESSAGE_SQL = """
UPDATE inbox_messages SET answer = %(answer)s, answered_at = %(now)s,
       read_at = coalesce(read_at, %(now)s)
 WHERE id = %(id)s
"""

INSERT_AUDIT_SQL = """
INSERT INTO audit_log (actor, account_id, action, object_ids, request_id, at)
VALUES (%(actor)s, %(account_id)s, %(action)s, %(object_ids)s, %(request_id)s, %(at)s)
"""


class RecoveryStore(ThrottleStore, Store):
    """Phone recoveries, vouches, duplicate-ID reviews, inbox."""

    constraint_errors = {
        "phone_recoveries_one_open": lambda: Conflict("recovery_in_progress"),
        "reviews_one_open_photo": lambda: Conflict("review_in_progress"),
    }

    # -- flows ----------------------------------------------------------------
    def insert_flow(self, **row):
        self.execute(INSERT_FLOW_SQL, row)

    def flow(self, flow_id, lock=False):
        return self.fetchone(FLOW_FOR_UPDATE_SQL if lock else FLOW_SQL, {"id": flow_id})

    def supersede_open(self, account_id, now):
        """True if the account keeps an open flow past step 2."""
        params = {"account_id": account_id, "now": now}
        self.execute(SUPERSEDE_OPEN_SQL, params)
        return self.fetchone(OPEN_PAST_STEP_TWO_SQL, params) is not None

    def old_phone_failed(self, flow_id, limit, now):
        return self.fetchone(
            OLD_PHONE_FAILED_SQL, {"id": flow_id, "limit": limit, "now": now}
        )

    def set_new_phone(self, flow_id, sealed_new_phone, password_hash, share_hash,
                      expires_at, now):  # fmt: skip
        cur = self.execute(
            SET_NEW_PHONE_SQL,
            {
                "id": flow_id,
                "sealed_new_phone": sealed_new_phone,
                "new_password_hash": password_hash,
                "share_token_hash": share_hash,
                "expires_at": expires_at,
                "now": now,
            },
        )
        return cur.rowcount == 1

    def close_flow(self, flow_id, status, now):
        self.execute(CLOSE_FLOW_SQL, {"id": flow_id, "status": status, "now": now})

    def set_status(self, flow_id, status, now):
        self.execute(SET_STATUS_SQL, {"id": flow_id, "status": status, "now": now})

    def complete_flow(self, flow_id, cancel_until, now):
        cur = self.execute(
            COMPLETE_FLOW_SQL, {"id": flow_id, "cancel_until": cancel_until, "now": now}
        )
        return cur.rowcount == 1

    def mark_handed_over(self, flow_id, now):
        return self.execute(MARK_HANDED_OVER_SQL, {"id": flow_id, "now": now}).rowcount

    def expire_due(self, now):
        return [row["id"] for row in self.fetchall(EXPIRE_DUE_SQL, {"now": now})]

    def add_vouch(self, flow_id, voucher_id, now):
        row = self.fetchone(
            INSERT_VOUCH_SQL,
            {"recovery_id": flow_id, "voucher_id": voucher_id, "now": now},
        )
        return row is not None

    def has_vouched(self, flow_id, voucher_id):
        return (
            self.fetchone(
                HAS_VOUCHED_SQL, {"recovery_id": flow_id, "voucher_id": voucher_id}
            )
            is not None
        )

    # -- caps (throttles: ThrottleStore) ---------------------------------------------
    def bump_counter(self, subject, period, cap):
        """True if the count was under ``cap`` and is now one higher."""
        row = self.fetchone(
            BUMP_COUNTER_SQL, {"subject": subject, "period": period, "cap": cap}
        )
        return row is not None

    def counter(self, subject, period):
        row = self.fetchone(COUNTER_SQL, {"subject": subject, "period": period})
        return row["count"] if row else 0

    # -- reviews and assistance ----------------------------------------------------
    def insert_review(self, **row):
        self.execute(INSERT_REVIEW_SQL, row)

    def review(self, review_id, lock=False):
        sql = REVIEW_FOR_UPDATE_SQL if lock else REVIEW_SQL
        return self.fetchone(sql, {"id": review_id})

    def review_photo(self, review_id):
        row = self.fetchone(REVIEW_PHOTO_SQL, {"id": review_id})
        return row["sealed_photo"] if row else None

    def reviews(self, status, limit, offset):
        rows = self.fetchall(
            REVIEWS_SQL, {"status": status, "limit": limit, "offset": offset}
        )
        return rows, (rows[0]["total"] if rows else None)

    def reviews_of_account(self, account_id, kind):
        return self.fetchall(
            REVIEWS_OF_ACCOUNT_SQL, {"account_id": account_id, "kind": kind}
        )

    def decide_review(self, review_id, status, reason, decided_by, purge_after, now):
        cur = self.execute(
            DECIDE_REVIEW_SQL,
            {
                "id": review_id,
                "status": status,
                "reason": reason,
                "decided_by": decided_by,
                "purge_after": purge_after,
                "now": now,
            },
        )
        return cur.rowcount == 1

    def purge_photos(self, now):
        return len(self.fetchall(PURGE_PHOTOS_SQL, {"now": now}))

    def insert_assistance(self, **row):
        self.execute(INSERT_ASSISTANCE_SQL, row)

    def assistance(self, request_id, lock=True):
        return self.fetchone(ASSISTANCE_FOR_UPDATE_SQL, {"id": request_id})

    def assistance_of_account(self, account_id):
        return self.fetchall(ASSISTANCE_OF_ACCOUNT_SQL, {"account_id": account_id})

    def answer_assistance(self, request_id, status, now):
        self.execute(
            ANSWER_ASSISTANCE_SQL, {"id": request_id, "status": status, "now": now}
        )

    def insert_resolution(self, account_id, resolution_id, via, now):
        """The resolution id that now applies (a holding move of the account
        keeps its id), or None if the account's move was applied or disputed
        before."""
        row = self.fetchone(
            INSERT_RESOLUTION_SQL,
            {
                "account_id": account_id,
                "resolution_id": resolution_id,
                "via": via,
                "now": now,
            },
        )
        return str(row["resolution_id"]) if row else None

    def resolution(self, account_id):
        return self.fetchone(RESOLUTION_SQL, {"account_id": account_id})

    def hold_resolution(self, **row):
        """True if the move now waits for its dispute window; False if the
        account's resolution was already under way."""
        return self.fetchone(HOLD_RESOLUTION_SQL, row) is not None

    def resolution_by_id(self, resolution_id):
        return self.fetchone(RESOLUTION_BY_ID_SQL, {"resolution_id": resolution_id})

    def set_resolution_status(self, resolution_id, status, from_states, now):
        return self.fetchone(
            SET_RESOLUTION_STATUS_SQL,
            {"resolution_id": resolution_id, "status": status,
             "from_states": list(from_states), "now": now},
        )  # fmt: skip

    def due_resolutions(self, now):
        return self.fetchall(DUE_RESOLUTIONS_SQL, {"now": now})

    def approved_helpers(self, account_id):
        return self.fetchone(APPROVED_HELPERS_SQL, {"account_id": account_id})[
            "helpers"
        ]

    def has_helped(self, account_id, classmate_id):
        row = self.fetchone(
            HAS_HELPED_SQL, {"account_id": account_id, "classmate_id": classmate_id}
        )
        return row is not None

    # -- inbox --------------------------------------------------------------------------
    def insert_message(self, **row):
        self.execute(INSERT_MESSAGE_SQL, row)

    def inbox(self, account_id, limit, offset):
        rows = self.fetchall(
            INBOX_SQL, {"account_id": account_id, "limit": limit, "offset": offset}
        )
        counts = self.fetchone(INBOX_COUNTS_SQL, {"account_id": account_id})
        return rows, counts

    def mark_read(self, account_id, ids, now):
        self.execute(MARK_READ_SQL, {"account_id": account_id, "ids": ids, "now": now})

    def message(self, account_id, message_id):
        return self.fetchone(
            MESSAGE_FOR_UPDATE_SQL, {"id": message_id, "account_id": account_id}
        )

    def answer_message(self, message_id, answer, now):
        self.execute(
            ANSWER_MESSAGE_SQL, {"id": message_id, "answer": answer, "now": now}
        )

    # -- audit -----------------------------------------------------------------------------
    def audit(self, actor, account_id, action, at, /, **ids):
        """Who did what to which account, when, under which request; only
        identifiers (as strings, ``None`` ones left out), never personal data."""
        object_ids = {k: str(v) for k, v in ids.items() if v is not None}
        self.execute(
            INSERT_AUDIT_SQL,
            {
                "actor": actor,
                "account_id": account_id,
                "action": action,
                "object_ids": Json(object_ids),
                "request_id": current_request_id(),
                "at": at,
            },
        )
