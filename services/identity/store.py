"""All SQL of the identity service."""

import json

from psycopg2.extras import Json

from services.common.contract.errors import Conflict
from services.common.plumbing.context import current_request_id
from services.common.plumbing.db import Store
from services.common.plumbing.throttle_store import ThrottleStore

__all__ = ["IdentityStore"]

_ACCOUNT_COLUMNS = """
id, passport_id, status, phone, email, name, id_type, id_number_sealed,
id_number_hash, birth_date, password_hash, roles, school_code, student_number,
department, enrollment_year, registry_status, guardian_phone,
guardian_verified_at, security_questions, created_at, class_name, locked_at,
locked_reason
"""

# -- accounts ------------------------------------------------------------------

ACTIVE_ACCOUNT_BY_ID_HASH_SQL = """
SELECT id, passport_id, status FROM accounts
 WHERE id_number_hash = %(id_number_hash)s AND status = 'active'
"""

LIVE_ACCOUNT_BY_PHONE_SQL = """
SELECT id, email FROM accounts
 WHERE phone = %(phone)s AND status <> 'deactivated'
   FOR UPDATE
"""

RELEASE_PHONE_SQL = """
UPDATE accounts SET phone = NULL, updated_at = %(now)s WHERE id = %(id)s
"""

INSERT_ACCOUNT_SQL = """
INSERT INTO accounts (id, passport_id, status, phone, email, name, id_type,
                      id_number_sealed, id_number_hash, birth_date, password_hash,
                      school_code, student_number, registry_status, guardian_phone,
                      guardian_verified_at, created_at, updated_at)
VALUES (%(id)s, %(passport_id)s, %(status)s, %(phone)s, %(email)s, %(name)s,
        %(id_type)s, %(id_number_sealed)s, %(id_number_hash)s, %(birth_date)s,
        %(password_hash)s, %(school_code)s, %(student_number)s, %(registry_status)s,
        %(guardian_phone)s, %(guardian_verified_at)s, %(now)s, %(now)s)
"""

ACCOUNT_SQL = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = %(id)s"

ACCOUNT_FOR_UPDATE_SQL = (
    f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = %(id)s FOR UPDATE"
)

# The live account a login name names: the active one first.
_BY_LOGIN_NAME = """
 WHERE status <> 'deactivated'
   AND (phone = %(phone)s
        OR lower(email) = lower(%(email)s)
        OR passport_id = %(passport)s
        OR (id_number_hash = ANY(%(id_hashes)s) AND status = 'active'))
 ORDER BY status = 'active' DESC, created_at
 LIMIT 1
"""

LIVE_ACCOUNT_BY_LOGIN_SQL = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts{_BY_LOGIN_NAME}"

# The login's one read: the account and whether the device is one of its
# own (a login is one round trip before the hash, not three).
LOGIN_ACCOUNT_SQL = f"""
SELECT {_ACCOUNT_COLUMNS},
       EXISTS (SELECT 1 FROM devices d
                WHERE d.account_id = accounts.id
                  AND d.device_id = %(device_id)s) AS device_known
  FROM accounts{_BY_LOGIN_NAME}"""

LIVE_ACCOUNTS_BY_ID_HASH_SQL = f"""
SELECT {_ACCOUNT_COLUMNS} FROM accounts
 WHERE id_number_hash = ANY(%(id_hashes)s) AND status <> 'deactivated'
 ORDER BY created_at
"""

UPDATE_PHONE_SQL = """
UPDATE accounts SET phone = %(phone)s, updated_at = %(now)s WHERE id = %(id)s
"""

UPDATE_EMAIL_SQL = """
UPDATE accounts SET email = %(email)s, updated_at = %(now)s WHERE id = %(id)s
"""

UPDATE_SECURITY_QUESTIONS_SQL = """
UPDATE accounts SET security_questions = %(questions)s, updated_at = %(now)s
 WHERE id = %(id)s
"""

UPDATE_ROLES_SQL = """
UPDATE accounts SET roles = %(roles)s, updated_at = %(now)s
 WHERE id = %(id)s AND status <> 'deactivated'
"""

UPDATE_GUARDIAN_SQL = """
UPDATE accounts SET guardian_phone = %(guardian_phone)s,
                    guardian_verified_at = %(now)s, updated_at = %(now)s
 WHERE id = %(id)s
"""

# Newest wins; a pass also records where the registry places the student.
APPLY_REGISTRY_RESULT_SQL = """
UPDATE accounts
   SET registry_status = %(status)s,
       school_code = CASE WHEN %(status)s = 'passed' THEN %(school_code)s
                          ELSE school_code END,
       student_number = CASE WHEN %(status)s = 'passed' THEN %(student_number)s
                             ELSE student_number END,
       class_name = CASE WHEN %(status)s = 'passed' THEN %(class_name)s
                         ELSE class_name END,
       registry_as_of = %(as_of)s, updated_at = now()
 WHERE id = %(account_id)s AND status <> 'deactivated'
   AND (registry_as_of IS NULL OR registry_as_of < %(as_of)s)
"""

UPDATE_AUTH_INFO_SQL = """
UPDATE accounts SET school_code = %(school_code)s,
                    student_number = %(student_number)s,
                    name = %(name)s,
                    department = %(department)s,
                    enrollment_year = %(enrollment_year)s,
                    registry_status = %(registry_status)s,
                    updated_at = %(now)s
 WHERE id = %(id)s
"""

# Deactivation: login names released, personal data erased; the row stays
# so audit records still point somewhere.
ERASE_ACCOUNT_SQL = """
UPDATE accounts SET status = 'deactivated', phone = NULL, email = NULL, name = NULL,
                    id_type = NULL, id_number_sealed = NULL, id_number_hash = NULL,
                    birth_date = NULL, password_hash = NULL, school_code = NULL,
                    student_number = NULL, department = NULL, enrollment_year = NULL,
                    guardian_phone = NULL, guardian_verified_at = NULL,
                    security_questions = NULL, deactivated_at = %(now)s,
                    updated_at = %(now)s
 WHERE id = %(id)s AND status <> 'deactivated'
"""

DELETE_DEVICES_SQL = "DELETE FROM devices WHERE account_id = %(account_id)s"

DELETE_LINKS_SQL = "DELETE FROM linked_identities WHERE account_id = %(account_id)s"

DELETE_FACTS_SQL = "DELETE FROM account_facts WHERE account_id = %(account_id)s"

# -- recovery: hand-overs, reverts, ID moves ----------------------------------------
LIVE_ACCOUNT_BY_STUDENT_SQL = f"""
SELECT {_ACCOUNT_COLUMNS} FROM accounts
 WHERE school_code = %(school_code)s AND student_number = %(student_number)s
   AND status <> 'deactivated'
"""

LIVE_ACCOUNT_BY_PHONE_ONLY_SQL = f"""
SELECT {_ACCOUNT_COLUMNS} FROM accounts
 WHERE phone = %(phone)s AND status <> 'deactivated'
"""

INSERT_ACCOUNT_RECOVERY_SQL = """
INSERT INTO account_recoveries (recovery_id, account_id, sealed_old_phone,
                                old_password_hash, applied_at)
VALUES (%(recovery_id)s, %(account_id)s, %(sealed_old_phone)s, %(old_password_hash)s,
        %(now)s)
ON CONFLICT (recovery_id) DO NOTHING
RETURNING recovery_id
"""

ACCOUNT_RECOVERY_SQL = """
SELECT recovery_id, account_id, sealed_old_phone, old_password_hash, applied_at,
       reverted_at
  FROM account_recoveries WHERE recovery_id = %(recovery_id)s FOR UPDATE
"""

MARK_RECOVERY_REVERTED_SQL = """
UPDATE account_recoveries SET reverted_at = %(now)s, sealed_old_phone = NULL,
       old_password_hash = NULL
 WHERE recovery_id = %(recovery_id)s
"""

# What a revert needs is kept only for the cancel window.
FORGET_OLD_RECOVERY_DATA_SQL = """
UPDATE account_recoveries SET sealed_old_phone = NULL, old_password_hash = NULL
 WHERE applied_at < %(before)s AND (sealed_old_phone IS NOT NULL
                                    OR old_password_hash IS NOT NULL)
"""

SET_PHONE_AND_PASSWORD_SQL = """
UPDATE accounts SET phone = %(phone)s, password_hash = %(password_hash)s,
                    updated_at = %(now)s
 WHERE id = %(id)s
"""

UPDATE_PASSWORD_SQL = """
UPDATE accounts SET password_hash = %(password_hash)s, updated_at = %(now)s
 WHERE id = %(id)s
"""

LOCK_ACCOUNT_SQL = """
UPDATE accounts SET locked_at = %(now)s, locked_reason = %(reason)s, updated_at = %(now)s
 WHERE id = %(id)s
"""

UNLOCK_ACCOUNT_SQL = """
UPDATE accounts SET locked_at = NULL, locked_reason = NULL, updated_at = %(now)s
 WHERE id = %(id)s AND locked_at IS NOT NULL
"""

INSERT_ID_MOVE_SQL = """
INSERT INTO id_moves (resolution_id, account_id, from_account_id, at)
VALUES (%(resolution_id)s, %(account_id)s, %(from_account_id)s, %(now)s)
ON CONFLICT (resolution_id) DO NOTHING
RETURNING resolution_id
"""

CLEAR_ID_BINDING_SQL = """
UPDATE accounts SET id_type = NULL, id_number_sealed = NULL, id_number_hash = NULL,
                    updated_at = %(now)s
 WHERE id = %(id)s
"""

ACTIVATE_ACCOUNT_SQL = """
UPDATE accounts SET status = 'active', updated_at = %(now)s
 WHERE id = %(id)s AND status = 'duplicate_pending'
"""

# -- sessions and devices --------------------------------------------------------

SESSION_BY_TOKEN_SQL = """
SELECT s.id AS session_id, s.account_id, s.device_id, s.expires_at,
       a.status, a.roles, a.school_code
  FROM sessions s JOIN accounts a ON a.id = s.account_id
 WHERE s.token_hash = %(token_hash)s AND s.revoked_at IS NULL
   AND s.expires_at > %(now)s AND a.status <> 'deactivated'
"""

REVOKE_SESSION_SQL = """
UPDATE sessions SET revoked_at = %(now)s, revoked_why = %(why)s
 WHERE id = %(id)s AND revoked_at IS NULL
RETURNING account_id
"""

REVOKE_ACCOUNT_SESSIONS_SQL = """
UPDATE sessions SET revoked_at = %(now)s, revoked_why = %(why)s
 WHERE account_id = %(account_id)s AND revoked_at IS NULL
RETURNING id
"""

DEVICE_KNOWN_SQL = """
SELECT 1 FROM devices WHERE account_id = %(account_id)s AND device_id = %(device_id)s
"""

# A login's one write: the device noted as seen and the session made, in
# one statement (the session's transaction relaxes durability first).
START_SESSION_SEEN_DEVICE_SQL = """
WITH seen AS (
    INSERT INTO devices (account_id, device_id, first_seen_at, last_seen_at)
    VALUES (%(account_id)s, %(device_id)s, %(now)s, %(now)s)
    ON CONFLICT (account_id, device_id) DO UPDATE SET last_seen_at = %(now)s
)
INSERT INTO sessions (id, token_hash, account_id, device_id, created_at, expires_at)
VALUES (%(id)s, %(token_hash)s, %(account_id)s, %(device_id)s, %(now)s, %(expires_at)s)
"""

REMEMBER_DEVICE_SQL = """
INSERT INTO devices (account_id, device_id, first_seen_at, last_seen_at)
VALUES (%(account_id)s, %(device_id)s, %(now)s, %(now)s)
ON CONFLICT (account_id, device_id) DO UPDATE SET last_seen_at = %(now)s
"""

PURGE_SESSIONS_SQL = """
DELETE FROM sessions WHERE expires_at < %(before)s OR revoked_at < %(before)s
"""

# -- linked identities ------------------------------------------------------------

INSERT_LINK_SQL = """
INSERT INTO linked_identities (provider, subject, account_id, linked_at)
VALUES (%(provider)s, %(subject)s, %(account_id)s, %(now)s)
ON CONFLICT (provider, subject) DO NOTHING
RETURNING account_id
"""

LINK_SQL = """
SELECT account_id FROM linked_identities
 WHERE provider = %(provider)s AND subject = %(subject)s
"""

LINKS_OF_ACCOUNT_SQL = """
SELECT provider, linked_at FROM linked_identities
 WHERE account_id = %(account_id)s ORDER BY provider
"""

DELETE_LINK_SQL = """
DELETE FROM linked_identities WHERE account_id = %(account_id)s AND provider = %(provider)s
"""

# -- projections of other systems' facts ------------------------------------------

# Out-of-order pushes: a row is replaced only by a newer ``as_of``.
UPSERT_ENROLLMENT_SQL = """
INSERT INTO enrollments (school_code, student_number, course_id, term, kind,
                         exam_ended, exam_ends_at, grades_published, makeup_pending,
                         dropped, as_of)
VALUES (%(school_code)s, %(student_number)s, %(course_id)s, %(term)s, %(kind)s,
        %(exam_ended)s, %(exam_ends_at)s, %(grades_published)s, %(makeup_pending)s,
        %(dropped)s, %(as_of)s)
ON CONFLICT (school_code, student_number, course_id, term) DO UPDATE
   SET kind = EXCLUDED.kind, exam_ended = EXCLUDED.exam_ended,
       exam_ends_at = EXCLUDED.exam_ends_at,
       grades_published = EXCLUDED.grades_published,
       makeup_pending = EXCLUDED.makeup_pending, dropped = EXCLUDED.dropped,
       as_of = EXCLUDED.as_of
 WHERE enrollments.as_of < EXCLUDED.as_of
"""

ENROLLMENTS_SQL = """
SELECT course_id, term, kind, exam_ended, exam_ends_at, grades_published,
       makeup_pending, dropped
  FROM enrollments
 WHERE school_code = %(school_code)s AND student_number = %(student_number)s
 ORDER BY term, course_id
"""

UPSERT_WINDOW_SQL = """
INSERT INTO change_windows (school_code, window_id, fields, starts_at, ends_at,
                            cancelled, as_of)
VALUES (%(school_code)s, %(window_id)s, %(fields)s, %(starts_at)s, %(ends_at)s,
        %(cancelled)s, %(as_of)s)
ON CONFLICT (school_code, window_id) DO UPDATE
   SET fields = EXCLUDED.fields, starts_at = EXCLUDED.starts_at,
       ends_at = EXCLUDED.ends_at, cancelled = EXCLUDED.cancelled,
       as_of = EXCLUDED.as_of
 WHERE change_windows.as_of < EXCLUDED.as_of
"""

WINDOWS_SQL = """
SELECT window_id, fields, starts_at, ends_at, cancelled FROM change_windows
 WHERE school_code = %(school_code)s AND ends_at > %(now)s
"""

UPSERT_WALLET_SQL = """
INSERT INTO account_facts (account_id, wallet_balance_fen, wallet_as_of)
VALUES (%(account_id)s, %(balance_fen)s, %(as_of)s)
ON CONFLICT (account_id) DO UPDATE
   SET wallet_balance_fen = EXCLUDED.wallet_balance_fen,
       wallet_as_of = EXCLUDED.wallet_as_of
 WHERE account_facts.wallet_as_of IS NULL
    OR account_facts.wallet_as_of < EXCLUDED.wallet_as_of
"""

UPSERT_COURSES_SQL = """
INSERT INTO account_facts (account_id, owned_courses, courses_as_of)
VALUES (%(account_id)s, %(owned)s, %(as_of)s)
ON CONFLICT (account_id) DO UPDATE
   SET owned_courses = EXCLUDED.owned_courses, courses_as_of = EXCLUDED.courses_as_of
 WHERE account_facts.courses_as_of IS NULL
    OR account_facts.courses_as_of < EXCLUDED.courses_as_of
"""

ACCOUNT_FACTS_SQL = """
SELECT wallet_balance_fen, owned_courses FROM account_facts
 WHERE account_id = %(account_id)s
"""

# -- audit -----------------------------------------------------------------------

INSERT_NOTICE_SQL = """
INSERT INTO notices (account_id, kind, channel, sealed_destination, params, created_at)
VALUES (%(account_id)s, %(kind)s, %(channel)s, %(sealed_destination)s, %(params)s,
        %(now)s)
RETURNING id
"""

NOTICE_SQL = """
SELECT id, account_id, kind, channel, sealed_destination, params, queued_at
  FROM notices WHERE id = %(id)s
   FOR UPDATE
"""

MARK_NOTICE_QUEUED_SQL = """
UPDATE notices SET queued_at = %(now)s, sealed_destination = NULL,
       -- a "not me" link is a bearer secret: gone once handed over
       params = params - 'not_me_url'
 WHERE id = %(id)s
"""

INSERT_AUDIT_SQL = """
INSERT INTO audit_log (account_id, actor, action, request_id, detail, at)
VALUES (%(account_id)s, %(actor)s, %(action)s, %(request_id)s, %(detail)s, %(at)s)
"""


class IdentityStore(ThrottleStore, Store):
    """Accounts, login names, sessions, devices, throttles, links,
    projections, audit."""

    constraint_errors = {
        "accounts_id_number_active": lambda: Conflict("id_already_registered"),
        "accounts_phone_live": lambda: Conflict("phone_already_bound"),
        "accounts_email_live": lambda: Conflict("email_already_bound"),
        "accounts_student_live": lambda: Conflict("student_number_registered"),
        "linked_identities_account_id_provider_key": lambda: Conflict("link_taken"),
    }

    # -- accounts --------------------------------------------------------
    def active_account_by_id_hash(self, id_number_hash):
        return self.fetchone(
            ACTIVE_ACCOUNT_BY_ID_HASH_SQL, {"id_number_hash": id_number_hash}
        )

    def live_account_by_phone(self, phone):
        """The account holding ``phone``, locked for this transaction."""
        return self.fetchone(LIVE_ACCOUNT_BY_PHONE_SQL, {"phone": phone})

    def release_phone(self, account_id, now):
        self.execute(RELEASE_PHONE_SQL, {"id": account_id, "now": now})

    def insert_account(self, **fields):
        defaults = {
            "phone": None,
            "email": None,
            "id_type": None,
            "id_number_sealed": None,
            "id_number_hash": None,
            "birth_date": None,
            "school_code": None,
            "student_number": None,
            "registry_status": "unverified",
            "guardian_phone": None,
            "guardian_verified_at": None,
        }
        self.execute(INSERT_ACCOUNT_SQL, {**defaults, **fields})

    def account(self, account_id, for_update=False):
        return self.fetchone(
            ACCOUNT_FOR_UPDATE_SQL if for_update else ACCOUNT_SQL, {"id": account_id}
        )

    def live_account_by_login(
        self, phone=None, email=None, passport=None, id_hashes=()
    ):
        return self.fetchone(
            LIVE_ACCOUNT_BY_LOGIN_SQL,
            {
                "phone": phone,
                "email": email,
                "passport": passport,
                "id_hashes": list(id_hashes),
            },
        )

    def live_accounts_by_id_hashes(self, id_hashes):
        return self.fetchall(
            LIVE_ACCOUNTS_BY_ID_HASH_SQL, {"id_hashes": list(id_hashes)}
        )

    def update_phone(self, account_id, phone, now):
        self.execute(UPDATE_PHONE_SQL, {"id": account_id, "phone": phone, "now": now})

    def update_email(self, account_id, email, now):
        self.execute(UPDATE_EMAIL_SQL, {"id": account_id, "email": email, "now": now})

    def update_security_questions(self, account_id, questions, now):
        self.execute(
            UPDATE_SECURITY_QUESTIONS_SQL,
            {"id": account_id, "questions": Json(questions), "now": now},
        )

    def update_roles(self, account_id, roles, now):
        """True when the (live) account exists."""
        cur = self.execute(
            UPDATE_ROLES_SQL, {"id": account_id, "roles": roles, "now": now}
        )
        return cur.rowcount == 1

    def update_guardian(self, account_id, guardian_phone, now):
        self.execute(
            UPDATE_GUARDIAN_SQL,
            {"id": account_id, "guardian_phone": guardian_phone, "now": now},
        )

    def apply_registry_result(self, result):
        """False when a newer result was already applied (or no account)."""
        cur = self.execute(APPLY_REGISTRY_RESULT_SQL, result)
        return cur.rowcount == 1

    def update_auth_info(self, account_id, info, registry_status, now):
        self.execute(
            UPDATE_AUTH_INFO_SQL,
            {**info, "id": account_id, "registry_status": registry_status, "now": now},
        )

    def erase_account(self, account_id, now):
        """True if this call deactivated it (False: it already was)."""
        erased = self.execute(
            ERASE_ACCOUNT_SQL, {"id": account_id, "now": now}
        ).rowcount
        for statement in (DELETE_DEVICES_SQL, DELETE_LINKS_SQL, DELETE_FACTS_SQL):
            self.execute(statement, {"account_id": account_id})
        return erased == 1

    # -- sessions and devices ----------------------------------------------
    def insert_session_seen_device(self, **fields):
        """A new session, its device noted as seen, in one statement."""
        self.execute(START_SESSION_SEEN_DEVICE_SQL, fields)

    def login_account(self, device_id, phone=None, email=None, passport=None,
                      id_hashes=()):  # fmt: skip
        """The live account a login name names, with ``device_known``; read
        outside any transaction (nothing here is written)."""
        return self.fetchone_alone(
            LOGIN_ACCOUNT_SQL,
            {
                "device_id": device_id,
                "phone": phone,
                "email": email,
                "passport": passport,
                "id_hashes": list(id_hashes),
            },
        )

    def session_by_token(self, token_hash, now):
        return self.fetchone(
            SESSION_BY_TOKEN_SQL, {"token_hash": token_hash, "now": now}
        )

    def revoke_session(self, session_id, why, now):
        row = self.fetchone(
            REVOKE_SESSION_SQL, {"id": session_id, "why": why, "now": now}
        )
        return row["account_id"] if row else None

    def revoke_account_sessions(self, account_id, why, now):
        rows = self.fetchall(
            REVOKE_ACCOUNT_SESSIONS_SQL,
            {"account_id": account_id, "why": why, "now": now},
        )
        return [str(row["id"]) for row in rows]

    def device_known(self, account_id, device_id, now):
        return (
            self.fetchone(
                DEVICE_KNOWN_SQL,
                {"account_id": account_id, "device_id": device_id, "now": now},
            )
            is not None
        )

    def remember_device(self, account_id, device_id, now):
        self.execute(
            REMEMBER_DEVICE_SQL,
            {"account_id": account_id, "device_id": device_id, "now": now},
        )

    def purge(self, now, forget_before, sessions_before):
        """Forgotten throttles and long-dead sessions; returns rows removed."""
        throttles = self.purge_throttles(now, forget_before)
        sessions = self.execute(
            PURGE_SESSIONS_SQL, {"before": sessions_before}
        ).rowcount
        return throttles, sessions

    # -- linked identities ---------------------------------------------------
    def insert_link(self, provider, subject, account_id, now):
        """The account the (provider, subject) is linked to after this call."""
        row = self.fetchone(
            INSERT_LINK_SQL,
            {
                "provider": provider,
                "subject": subject,
                "account_id": account_id,
                "now": now,
            },
        )
        if row:
            return row["account_id"]
        return self.linked_account(provider, subject)

    def linked_account(self, provider, subject):
        row = self.fetchone(LINK_SQL, {"provider": provider, "subject": subject})
        return row["account_id"] if row else None

    def links_of(self, account_id):
        return self.fetchall(LINKS_OF_ACCOUNT_SQL, {"account_id": account_id})

    def delete_link(self, account_id, provider):
        return (
            self.execute(
                DELETE_LINK_SQL, {"account_id": account_id, "provider": provider}
            ).rowcount
            == 1
        )

    # -- projections -----------------------------------------------------------
    def upsert_enrollment(self, enrollment):
        self.execute(UPSERT_ENROLLMENT_SQL, enrollment)

    def enrollments(self, school_code, student_number):
        if not school_code or not student_number:
            return []
        return self.fetchall(
            ENROLLMENTS_SQL,
            {"school_code": school_code, "student_number": student_number},
        )

    def upsert_window(self, window):
        self.execute(UPSERT_WINDOW_SQL, window)

    def windows(self, school_code, now):
        if not school_code:
            return []
        return self.fetchall(WINDOWS_SQL, {"school_code": school_code, "now": now})

    def set_wallet_balance(self, account_id, balance_fen, as_of):
        self.execute(
            UPSERT_WALLET_SQL,
            {"account_id": account_id, "balance_fen": balance_fen, "as_of": as_of},
        )

    def set_owned_courses(self, account_id, owned, as_of):
        self.execute(
            UPSERT_COURSES_SQL,
            {"account_id": account_id, "owned": Json(owned), "as_of": as_of},
        )

    def account_facts(self, account_id):
        row = self.fetchone(ACCOUNT_FACTS_SQL, {"account_id": account_id})
        return row or {"wallet_balance_fen": 0, "owned_courses": []}

    # -- audit -----------------------------------------------------------------
    # -- notices -------------------------------------------------------------
    def insert_notice(self, account_id, kind, channel, sealed_destination, params, now):
        return self.fetchone(
            INSERT_NOTICE_SQL,
            {
                "account_id": account_id,
                "kind": kind,
                "channel": channel,
                "sealed_destination": sealed_destination,
                "params": json.dumps(params, ensure_ascii=False),
                "now": now,
            },
        )["id"]

    def notice(self, notice_id):
        return self.fetchone(NOTICE_SQL, {"id": notice_id})

    def mark_notice_queued(self, notice_id, now):
        self.execute(MARK_NOTICE_QUEUED_SQL, {"id": notice_id, "now": now})

    def audit(self, actor, account_id, action, at, /, **detail):
        """Who did what, when, under which request; never personal data."""
        self.execute(
            INSERT_AUDIT_SQL,
            {
                "account_id": account_id,
                "actor": actor,
                "action": action,
                "request_id": current_request_id(),
                "detail": json.dumps(detail),
                "at": at,
            },
        )

    # -- recovery ----------------------------------------------------------------
    def live_account_by_student(self, school_code, student_number):
        return self.fetchone(
            LIVE_ACCOUNT_BY_STUDENT_SQL,
            {"school_code": school_code, "student_number": student_number},
        )

    def live_account_with_phone(self, phone):
        return self.fetchone(LIVE_ACCOUNT_BY_PHONE_ONLY_SQL, {"phone": phone})

    def insert_account_recovery(self, recovery_id, account_id, sealed_old_phone,
                                old_password_hash, now):  # fmt: skip
        """True the first time this recovery is applied."""
        row = self.fetchone(
            INSERT_ACCOUNT_RECOVERY_SQL,
            {
                "recovery_id": recovery_id,
                "account_id": account_id,
                "sealed_old_phone": sealed_old_phone,
                "old_password_hash": old_password_hash,
                "now": now,
            },
        )
        return row is not None

    def account_recovery(self, recovery_id):
        return self.fetchone(ACCOUNT_RECOVERY_SQL, {"recovery_id": recovery_id})

    def mark_recovery_reverted(self, recovery_id, now):
        self.execute(
            MARK_RECOVERY_REVERTED_SQL, {"recovery_id": recovery_id, "now": now}
        )

    def forget_old_recovery_data(self, before):
        self.execute(FORGET_OLD_RECOVERY_DATA_SQL, {"before": before})

    def set_phone_and_password(self, account_id, phone, password_hash, now):
        self.execute(
            SET_PHONE_AND_PASSWORD_SQL,
            {
                "id": account_id,
                "phone": phone,
                "password_hash": password_hash,
                "now": now,
            },
        )

    def update_password(self, account_id, password_hash, now):
        self.execute(
            UPDATE_PASSWORD_SQL,
            {"id": account_id, "password_hash": password_hash, "now": now},
        )

    def lock_account(self, account_id, reason, now):
        self.execute(LOCK_ACCOUNT_SQL, {"id": account_id, "reason": reason, "now": now})

    def unlock_account(self, account_id, now):
        return self.execute(UNLOCK_ACCOUNT_SQL, {"id": account_id, "now": now}).rowcount

    def insert_id_move(self, resolution_id, account_id, from_account_id, now):
        row = self.fetchone(
            INSERT_ID_MOVE_SQL,
            {
                "resolution_id": resolution_id,
                "account_id": account_id,
                "from_account_id": from_account_id,
                "now": now,
            },
        )
        return row is not None

    def clear_id_binding(self, account_id, now):
        self.execute(CLEAR_ID_BINDING_SQL, {"id": account_id, "now": now})

    def activate_account(self, account_id, now):
        return self.execute(
            ACTIVATE_ACCOUNT_SQL, {"id": account_id, "now": now}
        ).rowcount
