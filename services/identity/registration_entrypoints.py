"""Registration: by phone (real name + ID document) and, for K-12, by
school + student number with a guardian's phone. Mixed into
``IdentityService``; needs ``db``, ``clock``, ``keys``, ``hasher``,
``changes`` and ``verification``."""

import logging
import uuid

from services.common.plumbing.rpc import rpc
from services.common.rules import realname
from services.common.rules.calendar import beijing_day
from services.common.rules.contacts import (
    normalise_email,
    normalise_mobile,
)
from services.identity import domain, passwords
from services.identity.schemas import (
    AccountCreated,
    RegisterByPhoneRequest,
    RegisterByStudentNumberRequest,
)

__all__ = ["RegistrationEntrypoints"]

log = logging.getLogger(__name__)

_REGISTER_BY_PHONE = RegisterByPhoneRequest()
_REGISTER_BY_STUDENT_NUMBER = RegisterByStudentNumberRequest()
_ACCOUNT_CREATED = AccountCreated()


class RegistrationEntrypoints:
    # -- registration ------------------------------------------------------
    @rpc
    def register_by_phone(self, payload):
        """Phone + register code + password + real name + ID document."""
        request = _REGISTER_BY_PHONE.load(payload)
        now = self.clock()
        phone = normalise_mobile(request["phone"])
        email = normalise_email(request["email"]) if request["email"] else None
        name = realname.check_name(request["name"])
        document = realname.normalise_id(
            request["id_type"], request["id_number"], beijing_day(now)
        )
        password = passwords.check_password_rules(request["password"])
        id_hash = self.keys.lookup_hash(document.id_type, document.number)
        status = domain.registration_status(
            self.db.active_account_by_id_hash(id_hash), request["register_anyway"]
        )
        self.db.rollback()  # hold nothing while other services answer
        self.use_code(phone, "register", request["code"])
        password_hash = self.hasher.hash(password)

        account_id = str(uuid.uuid4())
        self.changes.take_over_phone(phone, account_id, now)
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
        return self._registered(
            account_id,
            passport_id,
            status,
            request["device_id"],
            now,
            id_type=document.id_type,
            warnings=list(document.warnings),
        )

    @rpc
    def register_by_student_number(self, payload):
        """K-12: school + student number + name + guardian phone proven by a
        ``guardian_check`` code + password. The passport ID is the login name."""
        request = _REGISTER_BY_STUDENT_NUMBER.load(payload)
        now = self.clock()
        school_code = domain.check_school_code(request["school_code"])
        student_number = domain.check_student_number(request["student_number"])
        name = realname.check_name(request["name"])
        guardian_phone = normalise_mobile(request["guardian_phone"])
        password = passwords.check_password_rules(request["password"])
        self.db.rollback()
        self.use_code(guardian_phone, "guardian_check", request["code"])
        password_hash = self.hasher.hash(password)

        account_id = str(uuid.uuid4())
        passport_id = domain.new_passport_id()
        self.db.insert_account(
            id=account_id,
            passport_id=passport_id,
            status="active",
            name=name,
            password_hash=password_hash,
            school_code=school_code,
            student_number=student_number,
            registry_status="pending",
            guardian_phone=guardian_phone,
            guardian_verified_at=now,
            now=now,
        )
        return self._registered(
            account_id, passport_id, "active", request["device_id"], now, by="student"
        )

    def _registered(self, account_id, passport_id, status, device_id, now, **detail):
        if device_id:  # the code just proved this device's holder
            self.db.remember_device(account_id, device_id, now)
        self.db.audit(
            account_id, account_id, "registered", now, status=status, **detail
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
