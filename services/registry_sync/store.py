"""All SQL of the registry_sync service."""

import json

from services.common.context import current_request_id
from services.common.db import Store
from services.common.errors import Conflict

__all__ = ["RegistryStore"]

INSERT_SCHOOL_SQL = """
INSERT INTO schools (code, name, region, token_hash, token_issued_at, created_at)
VALUES (%(code)s, %(name)s, %(region)s, %(token_hash)s, %(now)s, %(now)s)
"""

ROTATE_TOKEN_SQL = """
UPDATE schools SET token_hash = %(token_hash)s, token_issued_at = %(now)s
 WHERE code = %(code)s
"""

SCHOOL_SQL = """
SELECT code, name, region, token_issued_at, created_at FROM schools
 WHERE code = %(code)s
"""

SCHOOL_BY_TOKEN_SQL = "SELECT code, name FROM schools WHERE token_hash = %(token_hash)s"

INSERT_AUDIT_SQL = """
INSERT INTO audit_log (actor, school_code, action, object_ids, request_id, at)
VALUES (%(actor)s, %(school_code)s, %(action)s, %(object_ids)s, %(request_id)s, %(at)s)
"""


class RegistryStore(Store):
    """Schools, roster records, enrolments, change windows, verifications."""

    constraint_errors = {"schools_pkey": lambda: Conflict("school_exists")}

    def insert_school(self, code, name, region, token_hash, now):
        self.execute(
            INSERT_SCHOOL_SQL,
            {
                "code": code,
                "name": name,
                "region": region,
                "token_hash": token_hash,
                "now": now,
            },
        )

    def rotate_token(self, code, token_hash, now):
        """True when the school exists (its old token is dead from now)."""
        cur = self.execute(
            ROTATE_TOKEN_SQL, {"code": code, "token_hash": token_hash, "now": now}
        )
        return cur.rowcount == 1

    def school(self, code):
        return self.fetchone(SCHOOL_SQL, {"code": code})

    def school_by_token(self, token_hash):
        return self.fetchone(SCHOOL_BY_TOKEN_SQL, {"token_hash": token_hash})

    def audit(self, actor, school_code, action, object_ids, at):
        self.execute(
            INSERT_AUDIT_SQL,
            {
                "actor": actor,
                "school_code": school_code,
                "action": action,
                "object_ids": json.dumps(object_ids),
                "request_id": current_request_id(),
                "at": at,
            },
        )
