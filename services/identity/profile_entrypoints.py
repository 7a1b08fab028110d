"""The account as its student sees and changes it: the profile, phone,
email, security questions, guardian, authentication info under the
school's rules, deactivation, linked identities. Mixed into
``IdentityService``; needs ``db``, ``clock``, ``keys``, ``hasher``,
``assertions``, ``throttles``, ``changes`` and ``verification``.

Pattern in every command that needs a verification code: all local rules
first (a refusal must not burn the user's code), then the transaction is
rolled back so no row lock is held while ``verification`` answers, then the
code is checked, then the change is written with its audit record and
events in one transaction."""

import logging

from services.common.contract.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RuleViolation,
)
from services.common.plumbing.rpc import rpc
from services.common.rules import realname
from services.common.rules.calendar import beijing_day
from services.common.rules.contacts import (
    normalise_email,
    normalise_mobile,
)
from services.common.rules.masking import mask_email, mask_id_number, mask_phone
from services.identity import domain
from services.identity.schemas import (
    AuthInfoChangeRequest,
    ChangeEmailRequest,
    ChangePhoneRequest,
    DeactivateRequest,
    DeactivationStatus,
    GuardianRequest,
    LinkRequest,
    Permissions,
    Profile,
    RealNameOf,
    SecurityQuestionsRequest,
)

__all__ = ["ProfileEntrypoints"]

log = logging.getLogger(__name__)

_CHANGE_PHONE = ChangePhoneRequest()
_CHANGE_EMAIL = ChangeEmailRequest()
_SECURITY_QUESTIONS = SecurityQuestionsRequest()
_GUARDIAN = GuardianRequest()
_AUTH_INFO_CHANGE = AuthInfoChangeRequest()
_PERMISSIONS = Permissions()
_DEACTIVATION_STATUS = DeactivationStatus()
_DEACTIVATE = DeactivateRequest()
_LINK = LinkRequest()
_PROFILE = Profile()
_REAL_NAME = RealNameOf()


class ProfileEntrypoints:
    # -- profile ------------------------------------------------------------
    @rpc
    def me(self, account_id):
        account = domain.require_live(self.db.account(str(account_id)))
        number = (
            self.keys.id_sealer.open(account["id_number_sealed"])
            if account["id_number_sealed"]
            else None
        )
        today = beijing_day(self.clock())
        minor = realname.is_minor(account["birth_date"], today)
        links = self.db.links_of(account_id)
        return _PROFILE.dump(
            {
                "account_id": account["id"],
                "passport_id": account["passport_id"],
                "status": account["status"],
                "roles": account["roles"],
                "name": account["name"],
                "phone_masked": mask_phone(account["phone"])
                if account["phone"]
                else None,
                "email_masked": mask_email(account["email"])
                if account["email"]
                else None,
                "id_type": account["id_type"],
                "id_number_masked": mask_id_number(number) if number else None,
                "school_code": account["school_code"],
                "student_number": account["student_number"],
                "department": account["department"],
                "enrollment_year": account["enrollment_year"],
                "registry_status": account["registry_status"],
                "guardian": {
                    "required": minor,
                    "verified": account["guardian_verified_at"] is not None,
                    "phone_masked": mask_phone(account["guardian_phone"])
                    if account["guardian_phone"]
                    else None,
                },
                "security_questions_set": bool(account["security_questions"]),
                "linked_providers": [link["provider"] for link in links],
                "created_at": account["created_at"],
            }
        )

    @rpc
    def real_name_of(self, account_id):
        """What registry verification compares with the roster record: the
        account's own name and ID document as registered (never what a
        student types into the verification form)."""
        account = domain.require_live(self.db.account(str(account_id)))
        return _REAL_NAME.dump(
            {
                "account_id": account["id"],
                "name": account["name"],
                "id_type": account["id_type"],
                "id_number": self.keys.id_sealer.open(account["id_number_sealed"])
                if account["id_number_sealed"]
                else None,
                "birth_date": account["birth_date"],
                "school_code": account["school_code"],
                "student_number": account["student_number"],
            }
        )

    def _check_password(self, account, password, now):
        """Profile changes need the password; failures count like logins."""
        policy = domain.LOGIN_PER_ACCOUNT
        key = policy.key(account["id"])
        refusal = domain.throttle_refusal(policy, self.db.blocked_until([key]), now)
        if refusal is not None:
            raise refusal
        self.db.rollback()
        if not account["password_hash"] or not self.hasher.verify(
            account["password_hash"], password
        ):
            self.throttles.record(policy, key, now)
            self.db.commit()
            raise Forbidden("password_incorrect")

    @rpc
    def change_phone(self, payload):
        """Password + a ``change_phone`` code sent to the new phone."""
        request = _CHANGE_PHONE.load(payload)
        now = self.clock()
        account = domain.require_live(self.db.account(str(request["account_id"])))
        new_phone = normalise_mobile(request["new_phone"])
        if new_phone == account["phone"]:
            raise RuleViolation("same_as_current")
        self._check_password(account, request["password"], now)
        self.use_code(new_phone, "change_phone", request["code"])
        account_id = str(account["id"])
        self.changes.take_over_phone(new_phone, account_id, now)
        self.db.update_phone(account_id, new_phone, now)
        self.db.audit(account_id, account_id, "phone_changed", now)
        self.changes.announce(
            "phone_changed",
            account,  # as it was: the old phone hears of it
            now,
            request["device_id"],
            request["client_ip"],
            phone_masked=mask_phone(new_phone),
        )
        self.db.add_event(
            "phone_changed",
            {"account_id": account_id, "phone_masked": mask_phone(new_phone)},
        )
        self.db.commit()
        return {"phone_masked": mask_phone(new_phone)}

    @rpc
    def change_email(self, payload):
        """Password + a ``change_email`` code sent to the new address."""
        request = _CHANGE_EMAIL.load(payload)
        now = self.clock()
        account = domain.require_live(self.db.account(str(request["account_id"])))
        new_email = normalise_email(request["new_email"])
        if account["email"] and new_email == account["email"].lower():
            raise RuleViolation("same_as_current")
        holder = self.db.live_account_by_login(email=new_email)
        if holder is not None and holder["id"] != account["id"]:
            raise Conflict("email_already_bound")  # emails are not recycled
        self._check_password(account, request["password"], now)
        self.use_code(new_email, "change_email", request["code"])
        account_id = str(account["id"])
        self.db.update_email(account_id, new_email, now)
        self.db.audit(account_id, account_id, "email_changed", now)
        self.changes.announce(
            "email_changed",
            account,  # as it was: the old address hears of it
            now,
            request["device_id"],
            request["client_ip"],
            email_masked=mask_email(new_email),
        )
        self.db.add_event(
            "email_changed",
            {"account_id": account_id, "email_masked": mask_email(new_email)},
        )
        self.db.commit()
        return {"email_masked": mask_email(new_email)}

    @rpc
    def set_security_questions(self, payload):
        """Three questions; answers normalised, then hashed like passwords."""
        request = _SECURITY_QUESTIONS.load(payload)
        now = self.clock()
        account = domain.require_live(self.db.account(str(request["account_id"])))
        cleaned = domain.check_security_questions(request["questions"])
        self._check_password(account, request["password"], now)
        stored = [
            {"question": question, "answer_hash": self.hasher.hash(answer)}
            for question, answer in cleaned
        ]
        account_id = str(account["id"])
        self.db.update_security_questions(account_id, stored, now)
        self.db.audit(account_id, account_id, "security_questions_set", now)
        self.changes.announce(
            "security_questions_set",
            account,
            now,
            request["device_id"],
            request["client_ip"],
        )
        self.db.commit()
        return {"questions": [q for q, _ in cleaned]}

    @rpc
    def set_guardian(self, payload):
        """A minor's guardian phone, proven by a ``guardian_check`` code."""
        request = _GUARDIAN.load(payload)
        now = self.clock()
        account = domain.require_live(self.db.account(str(request["account_id"])))
        domain.check_guardian_allowed(account["birth_date"], beijing_day(now))
        guardian_phone = normalise_mobile(request["guardian_phone"])
        self.db.rollback()
        self.use_code(guardian_phone, "guardian_check", request["code"])
        account_id = str(account["id"])
        self.db.update_guardian(account_id, guardian_phone, now)
        self.db.audit(account_id, account_id, "guardian_verified", now)
        self.db.add_event("guardian_verified", {"account_id": account_id})
        self.db.commit()
        return {"guardian_phone_masked": mask_phone(guardian_phone)}

    # -- authentication info --------------------------------------------------
    def _permissions(self, account, now):
        enrollments = self.db.enrollments(
            account["school_code"], account["student_number"]
        )
        windows = self.db.windows(account["school_code"], now)
        return domain.auth_info_permissions(enrollments, windows, now)

    @rpc
    def auth_info_permissions(self, account_id):
        account = domain.require_live(self.db.account(str(account_id)))
        permissions = self._permissions(account, self.clock())
        return _PERMISSIONS.dump({"fields_": permissions})

    @rpc
    def change_auth_info(self, payload):
        """School, student number, name, department, enrollment year, under
        the school's lock rules, with a ``change_auth_info`` code."""
        request = _AUTH_INFO_CHANGE.load(payload)
        now = self.clock()
        account = domain.require_live(self.db.account(str(request["account_id"])))
        domain.require_unlimited(account)
        wanted = domain.check_auth_info(request, beijing_day(now))
        changed = domain.changed_auth_fields(account, wanted)
        domain.refuse_locked(self._permissions(account, now), changed)
        destination = domain.code_destination(account)
        self.db.rollback()
        self.use_code(destination, "change_auth_info", request["code"])
        account = domain.require_live(
            self.db.account(str(request["account_id"]), for_update=True)
        )
        # The lock rules again, under the row lock: a projection update may
        # have landed while the code was being checked.
        domain.refuse_locked(self._permissions(account, now), changed)
        info = {f: account[f] for f in domain.AUTH_INFO_FIELDS}
        info.update({f: wanted[f] for f in changed})
        reset = domain.registry_reset_needed(changed)
        registry_status = "pending" if reset else account["registry_status"]
        account_id = str(account["id"])
        self.db.update_auth_info(account_id, info, registry_status, now)
        self.db.audit(account_id, account_id, "auth_info_changed", now, fields=changed)
        self.db.add_event(
            "auth_info_changed",
            {
                "account_id": account_id,
                "fields_changed": changed,
                "school_code": info["school_code"],
                "registry_reset": reset,
            },
        )
        self.db.commit()
        return {"changed": changed, "registry_status": registry_status}

    # -- deactivation -----------------------------------------------------------
    def _unmet(self, account):
        facts = self.db.account_facts(account["id"])
        enrollments = self.db.enrollments(
            account["school_code"], account["student_number"]
        )
        return domain.deactivation_unmet(
            facts["wallet_balance_fen"], enrollments, facts["owned_courses"]
        )

    @rpc
    def deactivation_status(self, account_id):
        unmet = self._unmet(domain.require_live(self.db.account(str(account_id))))
        return _DEACTIVATION_STATUS.dump({"eligible": not unmet, "unmet": unmet})

    @rpc
    def deactivate(self, payload):
        """Immediate and irreversible once every condition holds and the
        ``deactivate`` code is right."""
        request = _DEACTIVATE.load(payload)
        now = self.clock()
        account = domain.require_live(self.db.account(str(request["account_id"])))
        domain.require_eligible(self._unmet(account))
        destination = domain.code_destination(account)
        self.db.rollback()
        self.use_code(destination, "deactivate", request["code"])
        account = domain.require_live(
            self.db.account(str(request["account_id"]), for_update=True)
        )
        domain.require_eligible(self._unmet(account))  # again, under the lock
        account_id = str(account["id"])
        ended = self.db.revoke_account_sessions(account_id, "deactivated", now)
        # Queued before the erase, in its transaction: the phone and address
        # are sealed into the notices while they still exist.
        self.changes.announce(
            "account_deactivated",
            account,
            now,
            request["device_id"],
            request["client_ip"],
        )
        self.db.erase_account(account_id, now)
        self.changes.sessions_ended(
            account_id, [], "deactivated", now, count=len(ended)
        )
        self.db.audit(account_id, account_id, "deactivated", now)
        self.db.add_event(
            "account_deactivated",
            {"account_id": account_id, "passport_id": account["passport_id"]},
        )
        self.db.commit()
        log.info("account %s deactivated", account_id)
        return {"deactivated": True}

    # -- linked identities ------------------------------------------------------
    @rpc
    def link_identity(self, payload):
        request = _LINK.load(payload)
        now = self.clock()
        account = domain.require_live(self.db.account(str(request["account_id"])))
        domain.require_unlimited(account)
        subject = self.assertions.subject(request["provider"], request["assertion"])
        account_id = str(account["id"])
        holder = self.db.insert_link(request["provider"], subject, account_id, now)
        if str(holder) != account_id:
            raise Conflict("link_taken")
        self.db.audit(
            account_id, account_id, "identity_linked", now, provider=request["provider"]
        )
        self.db.commit()
        return {"provider": request["provider"], "linked": True}

    @rpc
    def unlink_identity(self, account_id, provider):
        now = self.clock()
        account = domain.require_live(self.db.account(str(account_id)))
        if not self.db.delete_link(account["id"], provider):
            raise NotFound("link_not_found")
        self.db.audit(
            str(account["id"]),
            str(account["id"]),
            "identity_unlinked",
            now,
            provider=provider,
        )
        self.db.commit()
        return {"provider": provider, "linked": False}
