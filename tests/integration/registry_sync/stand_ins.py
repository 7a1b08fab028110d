"""What registry_sync asks identity, answered on the same broker by a stand-in:
the registry_sync integration tier runs registry_sync alone; the e2e tier
runs the real identity."""

import uuid
from datetime import date

from nameko.rpc import rpc

from services.common.plumbing.testing import random_resident_id


class IdentityStandIn:
    """identity's side of a registry verification (the account's own
    real-name data), answered from ``ACCOUNTS``."""

    name = "identity"
    ACCOUNTS = {}

    @rpc
    def real_name_of(self, account_id):
        return IdentityStandIn.ACCOUNTS[account_id]


def own_account(name):
    """A fresh account with a checksummed resident ID, as identity keeps it."""
    account_id = str(uuid.uuid4())
    IdentityStandIn.ACCOUNTS[account_id] = {
        "account_id": account_id,
        "name": name,
        "id_type": "resident_id",
        "id_number": random_resident_id(2008),
        "birth_date": date(2008, 1, 1).isoformat(),
        "school_code": None,
        "student_number": None,
    }
    return account_id
