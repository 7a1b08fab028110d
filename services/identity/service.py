"""The identity service: accounts, real-name data, login names, sessions and
devices, profile and authentication-info changes, deactivation, linked
identities. States and transitions: ``account_flows.mermaid``.

Pattern in every command that needs a verification code: all local rules
first (a refusal must not burn the user's code), then the transaction is
rolled back so no row lock is held while ``verification`` answers, then the
code is checked, then the change is written with its audit record and
events in one transaction.
"""

import hmac
import logging
import uuid
from datetime import timedelta

from nameko.dependency_providers import Config
from nameko.timer import timer

from services.common.contract.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RuleViolation,
    Throttled,
    Unauthenticated,
)
from services.common.plumbing import base
from services.common.plumbing.clock import Clock
from services.common.plumbing.db import Database
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.outbox import Outbox
from services.common.plumbing.rpc import ServiceRpc, rpc
from services.common.rules import realname
from services.common.rules.calendar import beijing_day
from services.common.rules.contacts import (
    canonical_login,
    normalise_email,
    normalise_mobile,
)
from services.common.rules.masking import mask_email, mask_id_number, mask_phone
from services.common.rules.roles import role_names
from services.common.rules.throttles import address_key
from services.identity import domain, passwords, recovery_entrypoints
from services.identity.dependencies import IdentityKeys, LinkProviders, PasswordHasher
from services.identity.schemas import (
    AccountCreated,
    AccountFactsRequest,
    AuthenticateRequest,
    AuthInfoChangeRequest,
    ChangeEmailRequest,
    ChangePhoneRequest,
    DeactivateRequest,
    DeactivationStatus,
    GuardianRequest,
    LinkRequest,
    LoginNames,
    LoginRequest,
    Permissions,
    Principal,
    Profile,
    RealNameOf,
    RegisterByPhoneRequest,
    RegisterByStudentNumberRequest,
    SecurityQuestionsRequest,
    SessionCreated,
    SetRolesRequest,
    UsernameRecoveryRequest,
)
from services.identity.store import IdentityStore

__all__ = ["IdentityService"]

log = logging.getLogger(__name__)

_REGISTER_BY_PHONE = RegisterByPhoneRequest()
_REGISTER_BY_STUDENT_NUMBER = RegisterByStudentNumberRequest()
_ACCOUNT_CREATED = AccountCreated()
_LOGIN = LoginRequest()
_SESSION_CREATED = SessionCreated()
_AUTHENTICATE = AuthenticateRequest()
_PRINCIPAL = Principal()
_USERNAME_RECOVERY = UsernameRecoveryRequest()
_LOGIN_NAMES = LoginNames()
_CHANGE_PHONE = ChangePhoneRequest()
_CHANGE_EMAIL = ChangeEmailRequest()
_SECURITY_QUESTIONS = SecurityQuestionsRequest()
_GUARDIAN = GuardianRequest()
_AUTH_INFO_CHANGE = AuthInfoChangeRequest()
_PERMISSIONS = Permissions()
_DEACTIVATION_STATUS = DeactivationStatus()
_DEACTIVATE = DeactivateRequest()
_LINK = LinkRequest()
_ACCOUNT_FACTS = AccountFactsRequest()
_PROFILE = Profile()
_REAL_NAME = RealNameOf()
_SET_ROLES = SetRolesRequest()


class IdentityService(recovery_entrypoints.RecoveryEntrypoints, base.ServiceBase):
    """Entrypoints of the identity service; what it does for the recovery
    service is in ``recovery_entrypoints.py``."""

    name = "identity"

    db = Database(IdentityStore)
    outbox = Outbox()  # relays the events db\'s stores queue
    clock = Clock()
    config = Config()
    keys = IdentityKeys()
    hasher = PasswordHasher()
    assertions = LinkProviders()
    verification = ServiceRpc("verification")
    recovery = ServiceRpc("recovery")

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
        self._use_code(phone, "register", request["code"])
        password_hash = self.hasher.hash(password)

        account_id = str(uuid.uuid4())
        self._take_over_phone(phone, account_id, now)
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
        self._use_code(guardian_phone, "guardian_check", request["code"])
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

    def _take_over_phone(self, phone, new_holder_id, now):
        """Numbers are recycled: a code just proved the caller holds ``phone``
        now, so an account still bound to it loses it and is told."""
        holder = self.db.live_account_by_phone(phone)
        if holder is None or str(holder["id"]) == str(new_holder_id):
            return
        self.db.release_phone(holder["id"], now)
        self.db.audit(holder["id"], str(new_holder_id), "phone_taken_over", now)
        self._announce("phone_taken_over", holder, now, phone_masked=mask_phone(phone))
        self.db.add_event(
            "phone_taken_over",
            {
                "account_id": str(holder["id"]),
                "by_account_id": str(new_holder_id),
                "phone_masked": mask_phone(phone),
                "notify_email": bool(holder["email"]),
            },
        )

    # -- notices -------------------------------------------------------------
    def _announce(self, kind, account, now, device_id=None, client_ip=None, **masked):
        """Queue a notice of ``kind`` to every channel ``account`` had bound
        (as it was before the change), in the change's own transaction."""
        params = domain.notice_params(now, device_id, client_ip, **masked)
        account_id = str(account["id"])
        for channel, destination in domain.notice_destinations(kind, account):
            notice_id = self.db.insert_notice(
                account_id,
                kind,
                channel,
                self.keys.notice_sealer.seal(destination),
                params,
                now,
            )
            self.db.add_event(
                "notice_requested",
                {"notice_id": notice_id, "account_id": account_id, "kind": kind},
            )

    @event_handler("identity", "notice_requested")
    def deliver_notice(self, payload, envelope):
        """Hand a queued notice to verification's delivery queue, once: the
        notice key makes a repeated hand-over (a crash after the RPC) a no-op
        there, and the sealed destination is wiped here once it is handed."""
        notice = self.db.notice(payload["notice_id"])
        if notice is None or notice["queued_at"] is not None:
            return
        self.verification.send_notice(
            {
                "channel": notice["channel"],
                "destination": self.keys.notice_sealer.open(
                    notice["sealed_destination"]
                ),
                "kind": notice["kind"],
                "params": notice["params"],
                "notice_key": f"identity-notice:{notice['id']}",
            }
        )
        self.db.mark_notice_queued(notice["id"], self.clock())

    # -- sessions and devices ----------------------------------------------
    @rpc
    def login(self, payload):
        """Login name + password, or a provider assertion; an unseen device
        needs a ``login_new_device`` code first (403, the code is sent)."""
        request = _LOGIN.load(payload)
        now = self.clock()
        ip_key = domain.LOGIN_PER_IP.key(address_key(request["client_ip"]))
        if request["login"] is not None:
            account, device_known = self._check_password_login(request, ip_key, now)
        else:
            account, device_known = self._check_provider_login(request, ip_key, now)
        device_id = request["device_id"]
        decision = domain.login_decision(account, device_known, bool(request["code"]))
        if decision.outcome == "send_device_code":
            self.db.commit()
            raise self._device_challenge(account, decision, request["client_ip"])
        if decision.outcome == "check_device_code":
            self.db.commit()  # the throttle reset stands even if the code is wrong
            self._use_code(
                decision.code_destination, "login_new_device", request["code"]
            )
            self.db.audit(account["id"], str(account["id"]), "device_added", now)
            self._announce(
                "new_device_login", account, now, device_id, request["client_ip"]
            )
        # Known or just proved: remembered / noted as seen with the session.
        return self._start_session(account, device_id, now)

    def _check_password_login(self, request, ip_key, now):
        kind, value = domain.classify_login(request["login"])
        lookup = {"id_hashes": ()}
        if kind == "id_number":
            lookup["id_hashes"] = [
                self.keys.lookup_hash(id_type, number)
                for id_type, number in domain.id_number_candidates(
                    value, beijing_day(now)
                )
            ]
        elif kind != "unknown":
            lookup[kind] = value
        account = (
            self.db.login_account(request["device_id"], **lookup)
            if kind != "unknown"
            else None
        )
        # Unknown login names are throttled under their keyed hash, so a miss
        # and a wrong password look the same to the caller.
        account_key = domain.LOGIN_PER_ACCOUNT.key(
            account["id"] if account else self.keys.lookup_hash("login", kind, value)
        )
        trusted = account is not None and account["device_known"]
        keys = [ip_key] if trusted else [ip_key, account_key]
        rows = self.db.throttles([ip_key, account_key], alone=True)
        blocked = [rows[k]["blocked_until"] for k in keys if k in rows]
        refusal = domain.throttle_refusal(
            domain.LOGIN_PER_ACCOUNT, max(filter(None, blocked), default=None), now
        )
        self.db.rollback()
        if refusal is not None:
            raise refusal
        stored = account["password_hash"] if account else None
        matched = self.hasher.verify(
            stored or self.hasher.dummy_hash, request["password"]
        )
        if not (matched and stored):
            self._count_failure(domain.LOGIN_PER_IP, ip_key, now)
            self._count_failure(domain.LOGIN_PER_ACCOUNT, account_key, now)
            self.db.commit()
            raise Unauthenticated("invalid_credentials")
        if account_key in rows:  # a success forgets earlier failures
            self.db.clear_throttle(account_key)
        if account["locked_at"] is not None:
            # "Not me" after a phone recovery: a reviewer decides first.
            raise Forbidden("account_locked", {"reason": account["locked_reason"]})
        return account, trusted

    def _check_provider_login(self, request, ip_key, now):
        refusal = domain.throttle_refusal(
            domain.LOGIN_PER_IP, self.db.blocked_until([ip_key]), now
        )
        if refusal is not None:
            raise refusal
        subject = self.assertions.subject(request["provider"], request["assertion"])
        account_id = self.db.linked_account(request["provider"], subject)
        account = self.db.account(account_id) if account_id else None
        if account is None or account["status"] == "deactivated":
            raise NotFound("link_not_found")
        return account, self.db.device_known(account["id"], request["device_id"], now)

    def _count_failure(self, policy, key, now):
        failures = self.db.count_failure(key, now, now - policy.window)
        delay = policy.block_after(failures)
        if delay:
            self.db.block(key, now + delay)

    def _device_challenge(self, account, decision, client_ip):
        """The 403 to raise, after sending a code to the bound phone."""
        extra = {
            "purpose": "login_new_device",
            "phone_masked": mask_phone(decision.code_destination),
            "code_sent": True,
        }
        try:
            sent = self.verification.issue_code(
                {
                    "channel": "sms",
                    "destination": decision.code_destination,
                    "purpose": "login_new_device",
                    "account_id": str(account["id"]),
                    "client_ip": client_ip,
                }
            )
            extra["resend_after"] = sent["resend_after"]
        except Throttled as refusal:  # a code sent moments ago is still good
            extra.update(code_sent=False, code_refusal=refusal.code, **refusal.extra)
        return Forbidden("device_verification_required", extra)

    def _start_session(self, account, device_id, now):
        # A session lost in a database crash costs the user one more login;
        # not worth a WAL flush on the login path.
        self.db.relax_durability()
        token = domain.new_session_token()
        session_id = str(uuid.uuid4())
        expires_at = now + timedelta(hours=float(self.config["SESSION_TTL_HOURS"]))
        self.db.insert_session_seen_device(
            id=session_id,
            token_hash=self.keys.token_hash(token),
            account_id=account["id"],
            device_id=device_id,
            now=now,
            expires_at=expires_at,
        )
        self.db.commit()
        return _SESSION_CREATED.dump(
            {
                "token": token,
                "session_id": session_id,
                "account_id": account["id"],
                "expires_at": expires_at,
            }
        )

    @rpc
    def authenticate(self, payload):
        """Who a bearer token speaks for; one indexed read. A token works
        only from the device it was issued to."""
        request = _AUTHENTICATE.load(payload)
        session = self.db.session_by_token(
            self.keys.token_hash(request["token"]), self.clock()
        )
        if not request["device_id"]:
            # Every session is made on a device and works only there: a
            # caller that names none is refused, never waved through.
            raise Unauthenticated("device_required")
        if session is None or not hmac.compare_digest(
            request["device_id"].encode(), session["device_id"].encode()
        ):
            raise Unauthenticated("invalid_token")
        return _PRINCIPAL.dump(session)

    @rpc
    def logout(self, session_id):
        now = self.clock()
        account_id = self.db.revoke_session(session_id, "logout", now)
        if account_id is None:
            return {"ended": 0}  # already ended: a retry
        self._sessions_ended(account_id, [session_id], "logout", now)
        self.db.commit()
        return {"ended": 1}

    @rpc
    def end_all_sessions(self, account_id, reason):
        """Every session of the account ends (password reset, recovery, a
        user's "sign out everywhere")."""
        now = self.clock()
        ended = self.db.revoke_account_sessions(account_id, reason, now)
        self._sessions_ended(account_id, [], reason, now, count=len(ended))
        self.db.commit()
        return {"ended": len(ended)}

    def _sessions_ended(self, account_id, session_ids, reason, now, count=None):
        self.db.audit(
            account_id,
            str(account_id),
            "sessions_ended",
            now,
            reason=reason,
            count=len(session_ids) if count is None else count,
        )
        self.db.add_event(
            "sessions_revoked",
            {
                "account_id": str(account_id),
                "session_ids": [str(s) for s in session_ids],
                "reason": reason,
            },
        )

    # -- username recovery --------------------------------------------------
    @rpc
    def recover_username(self, payload):
        """ID number + name + captcha -> the login names, masked. Failed
        attempts (captcha or no match) are throttled per IP and per ID number."""
        request = _USERNAME_RECOVERY.load(payload)
        now = self.clock()
        # Keyed as identity resolves it: spaces, full-width digits, a small
        # x or the legacy 15 digits name the same ID number, one throttle.
        raw_id = canonical_login(request["id_number"], beijing_day(now))[1]
        throttles = [
            (
                domain.USERNAME_RECOVERY_PER_IP,
                domain.USERNAME_RECOVERY_PER_IP.key(address_key(request["client_ip"])),
            ),
            (
                domain.USERNAME_RECOVERY_PER_ID,
                domain.USERNAME_RECOVERY_PER_ID.key(
                    self.keys.lookup_hash("recovery", raw_id)
                ),
            ),
        ]
        refusal = domain.throttle_refusal(
            domain.USERNAME_RECOVERY_PER_ID,
            self.db.blocked_until([key for _, key in throttles]),
            now,
        )
        self.db.rollback()
        if refusal is not None:
            raise refusal
        try:
            self.verification.verify_captcha(
                {
                    "captcha_id": str(request["captcha_id"]),
                    "answer": request["captcha_answer"],
                }
            )
        except RuleViolation:
            # Decided before any lookup: the answer and its timing cannot
            # depend on whether the ID number exists.
            self._recovery_failed(throttles, now)
            raise
        candidates = domain.id_number_candidates(request["id_number"], beijing_day(now))
        hashes = [self.keys.lookup_hash(t, n) for t, n in candidates]
        name = request["name"].strip()
        matches = [
            account
            for account in self.db.live_accounts_by_id_hashes(hashes)
            if account["name"] == name
        ]
        if not matches:
            self._recovery_failed(throttles, now)
            raise NotFound("no_match")
        names = []
        for account in matches:
            number = self.keys.id_sealer.open(account["id_number_sealed"])
            names.extend(domain.masked_login_names(account, number))
            self.db.audit(account["id"], "anonymous", "username_recovered", now)
        self.db.commit()
        return _LOGIN_NAMES.dump({"login_names": names})

    def _recovery_failed(self, throttles, now):
        for policy, key in throttles:
            self._count_failure(policy, key, now)
        self.db.commit()

    # -- profile ------------------------------------------------------------
    @rpc
    def me(self, account_id):
        account = self._live_account(account_id)
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
        account = self._live_account(account_id)
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

    def _live_account(self, account_id, for_update=False):
        account = self.db.account(str(account_id), for_update=for_update)
        if account is None or account["status"] == "deactivated":
            raise Unauthenticated("invalid_token")
        return account

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
            self._count_failure(policy, key, now)
            self.db.commit()
            raise Forbidden("password_incorrect")

    def _use_code(self, destination, purpose, code):
        self.verification.check_code(
            {"destination": destination, "purpose": purpose, "code": code}
        )

    @rpc
    def change_phone(self, payload):
        """Password + a ``change_phone`` code sent to the new phone."""
        request = _CHANGE_PHONE.load(payload)
        now = self.clock()
        account = self._live_account(request["account_id"])
        new_phone = normalise_mobile(request["new_phone"])
        if new_phone == account["phone"]:
            raise RuleViolation("same_as_current")
        self._check_password(account, request["password"], now)
        self._use_code(new_phone, "change_phone", request["code"])
        account_id = str(account["id"])
        self._take_over_phone(new_phone, account_id, now)
        self.db.update_phone(account_id, new_phone, now)
        self.db.audit(account_id, account_id, "phone_changed", now)
        self._announce(
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
        account = self._live_account(request["account_id"])
        new_email = normalise_email(request["new_email"])
        if account["email"] and new_email == account["email"].lower():
            raise RuleViolation("same_as_current")
        holder = self.db.live_account_by_login(email=new_email)
        if holder is not None and holder["id"] != account["id"]:
            raise Conflict("email_already_bound")  # emails are not recycled
        self._check_password(account, request["password"], now)
        self._use_code(new_email, "change_email", request["code"])
        account_id = str(account["id"])
        self.db.update_email(account_id, new_email, now)
        self.db.audit(account_id, account_id, "email_changed", now)
        self._announce(
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
        account = self._live_account(request["account_id"])
        cleaned = domain.check_security_questions(request["questions"])
        self._check_password(account, request["password"], now)
        stored = [
            {"question": question, "answer_hash": self.hasher.hash(answer)}
            for question, answer in cleaned
        ]
        account_id = str(account["id"])
        self.db.update_security_questions(account_id, stored, now)
        self.db.audit(account_id, account_id, "security_questions_set", now)
        self._announce(
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
        account = self._live_account(request["account_id"])
        domain.check_guardian_allowed(account["birth_date"], beijing_day(now))
        guardian_phone = normalise_mobile(request["guardian_phone"])
        self.db.rollback()
        self._use_code(guardian_phone, "guardian_check", request["code"])
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
        account = self._live_account(account_id)
        permissions = self._permissions(account, self.clock())
        return _PERMISSIONS.dump({"fields_": permissions})

    @rpc
    def change_auth_info(self, payload):
        """School, student number, name, department, enrollment year, under
        the school's lock rules, with a ``change_auth_info`` code."""
        request = _AUTH_INFO_CHANGE.load(payload)
        now = self.clock()
        account = self._live_account(request["account_id"])
        domain.require_unlimited(account)
        wanted = domain.check_auth_info(request, beijing_day(now))
        changed = domain.changed_auth_fields(account, wanted)
        domain.refuse_locked(self._permissions(account, now), changed)
        destination = domain.code_destination(account)
        self.db.rollback()
        self._use_code(destination, "change_auth_info", request["code"])
        account = self._live_account(request["account_id"], for_update=True)
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
        unmet = self._unmet(self._live_account(account_id))
        return _DEACTIVATION_STATUS.dump({"eligible": not unmet, "unmet": unmet})

    @rpc
    def deactivate(self, payload):
        """Immediate and irreversible once every condition holds and the
        ``deactivate`` code is right."""
        request = _DEACTIVATE.load(payload)
        now = self.clock()
        account = self._live_account(request["account_id"])
        domain.require_eligible(self._unmet(account))
        destination = domain.code_destination(account)
        self.db.rollback()
        self._use_code(destination, "deactivate", request["code"])
        account = self._live_account(request["account_id"], for_update=True)
        domain.require_eligible(self._unmet(account))  # again, under the lock
        account_id = str(account["id"])
        ended = self.db.revoke_account_sessions(account_id, "deactivated", now)
        # Queued before the erase, in its transaction: the phone and address
        # are sealed into the notices while they still exist.
        self._announce(
            "account_deactivated",
            account,
            now,
            request["device_id"],
            request["client_ip"],
        )
        self.db.erase_account(account_id, now)
        self._sessions_ended(account_id, [], "deactivated", now, count=len(ended))
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
        account = self._live_account(request["account_id"])
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
        account = self._live_account(account_id)
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

    @timer(interval=3600)
    def purge_expired(self):
        """Hourly: throttle rows that no longer count, sessions dead 30 days."""
        now = self.clock()
        throttles, sessions = self.db.purge(
            now, now - domain.LONGEST_THROTTLE_WINDOW, now - timedelta(days=30)
        )
        # What a "not me" revert needs, kept past any cancel window only.
        self.db.forget_old_recovery_data(now - timedelta(days=30))
        self.db.commit()
        if throttles or sessions:
            log.info("purged %s throttle rows, %s sessions", throttles, sessions)

    # -- staff roles -------------------------------------------------------------
    @rpc
    def set_roles(self, payload):
        """Ops grant staff roles (``school_admin`` of one school, ``reviewer``,
        ``ops``), replacing the account's previous ones. Every gateway drops
        its cached principals of the account at once (``roles_changed``)."""
        request = _SET_ROLES.load(payload)
        now = self.clock()
        roles = role_names(request["roles"])
        account_id = str(request["account_id"])
        if not self.db.update_roles(account_id, roles, now):
            raise NotFound("account_not_found")
        self.db.audit(account_id, request["actor"], "roles_set", now, roles=roles)
        self.db.add_event("roles_changed", {"account_id": account_id})
        self.db.commit()
        return {"account_id": account_id, "roles": roles}

    # -- facts other systems own ---------------------------------------------------
    @rpc
    def set_account_facts(self, payload):
        """The internal endpoint's way in (the events are the usual one)."""
        request = _ACCOUNT_FACTS.load(payload)
        account_id = str(request["account_id"])
        if request["balance_fen"] is not None:
            self.db.set_wallet_balance(
                account_id, request["balance_fen"], request["as_of"]
            )
        if request["owned"] is not None:
            self.db.set_owned_courses(account_id, request["owned"], request["as_of"])
        self.db.commit()
        return {"account_id": account_id}

    @event_handler("wallet", "wallet_balance_changed")
    def on_wallet_balance(self, payload, envelope):
        self.db.set_wallet_balance(
            str(payload["account_id"]), payload["balance_fen"], payload["as_of"]
        )

    @event_handler("courses", "course_ownership_changed")
    def on_course_ownership(self, payload, envelope):
        self.db.set_owned_courses(
            str(payload["account_id"]), payload["owned"], payload["as_of"]
        )

    @event_handler("registry_sync", "enrollment_changed")
    def on_enrollment(self, payload, envelope):
        self.db.upsert_enrollment(payload)

    @event_handler("registry_sync", "registry_verification_changed")
    def on_registry_verification(self, payload, envelope):
        self.db.apply_registry_result(
            {**payload, "account_id": str(payload["account_id"])}
        )

    @event_handler("registry_sync", "change_window_changed")
    def on_change_window(self, payload, envelope):
        self.db.upsert_window({**payload, "fields": payload.pop("fields_")})
