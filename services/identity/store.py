"""All SQL of the identity service."""

import json

from services.common.context import current_request_id
from services.common.db import Store
from services.common.errors import Conflict

__all__ = ["IdentityStore"]

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
                      created_at, updated_at)
VALUES (%(id)s, %(passport_id)s, %(status)s, %(phone)s, %(email)s, %(name)s,
        %(id_type)s, %(id_number_sealed)s, %(id_number_hash)s, %(birth_date)s,
        %(password_hash)s, %(now)s, %(now)s)
"""

ACCOUNT_SQL = """
SELECT id, passport_id, status, phone, email, name, id_type, id_number_sealed,
       birth_date, roles, created_at
  FROM accounts WHERE id = %(id)s
"""

INSERT_AUDIT_SQL = """
INSERT INTO audit_log (account_id, actor, action, request_id, detail, at)
VALUES (%(account_id)s, %(actor)s, %(action)s, %(request_id)s, %(detail)s, %(at)s)
"""


class IdentityStore(Store):
    """Accounts, login names, real-name data, audit."""

    constraint_errors = {
        "accounts_id_number_active": lambda: Conflict("id_already_registered"),
        "accounts_phone_live": lambda: Conflict("phone_already_bound"),
        "accounts_email_live": lambda: Conflict("email_already_bound"),
    }

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
        self.execute(INSERT_ACCOUNT_SQL, fields)

    def account(self, account_id):
        return self.fetchone(ACCOUNT_SQL, {"id": account_id})

    def audit(self, account_id, actor, action, at, **detail):
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
