"""The identity service: accounts, real-name data, login names, sessions and
devices."""

import logging
import uuid

from services.common import base
from services.common.calendar import beijing_day
from services.common.clock import Clock
from services.common.contacts import normalise_email, normalise_mobile
from services.common.crypto import keyed_hash
from services.common.db import Database
from services.common.masking import mask_phone
from services.common.rpc import ServiceRpc, rpc
from services.identity import domain, passwords, realname
from services.identity.dependencies import IdentityKeys, PasswordHasher
from services.identity.schemas import AccountCreated, RegisterByPhoneRequest
from services.identity.store import IdentityStore

__all__ = ["IdentityService"]

log = logging.getLogger(__name__)

_REGISTER_BY_PHONE = RegisterByPhoneRequest()
_ACCOUNT_CREATED = AccountCreated()


class IdentityService(base.ServiceBase):
    """Entrypoints of the identity service."""

    name = "identity"

    db = Database(IdentityStore)
    clock = Clock()
    keys = IdentityKeys()
    hasher = PasswordHasher()
    verification = ServiceRpc("verification")

    @rpc
    def register_by_phone(self, payload):
        """Phone + register code + password + real name + ID document."""
        request = _REGISTER_BY_PHONE.load(payload)
        now = self.clock()
        # Every local rule first, so a refusal does not burn the user's code.
        phone = normalise_mobile(request["phone"])
        email = normalise_email(request["email"]) if request["email"] else None
        name = realname.check_name(request["name"])
        document = realname.normalise_id(
            request["id_type"], request["id_number"], beijing_day(now)
        )
        password = passwords.check_password_rules(request["password"])
        id_hash = keyed_hash(self.keys.id_lookup_key, document.id_type, document.number)
        status = domain.registration_status(
            self.db.active_account_by_id_hash(id_hash), request["register_anyway"]
        )
        self.db.rollback()  # hold nothing while other services answer
        self.verification.check_code(
            {
                "destination": phone,
                "purpose": "register",
                "code": request["code"],
                "channel": "sms",
            }
        )
        password_hash = self.hasher.hash(password)

        account_id = str(uuid.uuid4())
        holder = self.db.live_account_by_phone(phone)
        if holder is not None:
            # Numbers are recycled: the code proved this caller holds the
            # phone now, so the old account loses it and is told.
            self.db.release_phone(holder["id"], now)
            self.db.audit(holder["id"], account_id, "phone_taken_over", now)
            self.db.add_event(
                "phone_taken_over",
                {
                    "account_id": str(holder["id"]),
                    "by_account_id": account_id,
                    "phone_masked": mask_phone(phone),
                    "notify_email": bool(holder["email"]),
                },
            )
        passport_id = domain.new_passport_id()
        self.db.insert_account(
            id=account_id,
            passport_id=passport_id,
            status=status,
            phone=phone,
            email=email,
            name=name,
            id_type=document.id_type,
            id_number_sealed=self.keys.id_sealer.seal(document.number),
            id_number_hash=id_hash,
            birth_date=document.birth_date,
            password_hash=password_hash,
            now=now,
        )
        self.db.audit(
            account_id,
            account_id,
            "registered",
            now,
            status=status,
            id_type=document.id_type,
            warnings=list(document.warnings),
        )
        self.db.add_event(
            "account_registered",
            {"account_id": account_id, "passport_id": passport_id, "status": status},
        )
        self.db.commit()
        log.info("account %s registered (%s)", account_id, status)
        return _ACCOUNT_CREATED.dump(
            {"account_id": account_id, "passport_id": passport_id, "status": status}
        )
