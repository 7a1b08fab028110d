"""Logins (password or a linked identity provider), the new-device
challenge, sessions and their end, and username recovery. Mixed into
``IdentityService``; needs ``db``, ``clock``, ``config``, ``keys``,
``hasher``, ``assertions``, ``throttles``, ``changes`` and ``verification``."""

import hmac
import logging
import uuid
from datetime import timedelta

from services.common.contract.errors import (
    Forbidden,
    NotFound,
    RuleViolation,
    Throttled,
    Unauthenticated,
)
from services.common.plumbing.rpc import rpc
from services.common.rules.calendar import beijing_day
from services.common.rules.contacts import (
    canonical_login,
)
from services.common.rules.masking import mask_phone
from services.common.rules.throttles import address_key
from services.identity import domain
from services.identity.schemas import (
    AuthenticateRequest,
    LoginNames,
    LoginRequest,
    Principal,
    SessionCreated,
    UsernameRecoveryRequest,
)

__all__ = ["SessionEntrypoints"]

log = logging.getLogger(__name__)

_LOGIN = LoginRequest()
_SESSION_CREATED = SessionCreated()
_AUTHENTICATE = AuthenticateRequest()
_PRINCIPAL = Principal()
_USERNAME_RECOVERY = UsernameRecoveryRequest()
_LOGIN_NAMES = LoginNames()


class SessionEntrypoints:
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
            self.use_code(
                decision.code_destination, "login_new_device", request["code"]
            )
            self.db.audit(str(account["id"]), account["id"], "device_added", now)
            self.changes.announce(
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
        rows = self.db.throttle_rows([ip_key, account_key], alone=True)
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
            self.throttles.record(domain.LOGIN_PER_IP, ip_key, now)
            self.throttles.record(domain.LOGIN_PER_ACCOUNT, account_key, now)
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
        self.changes.sessions_ended(account_id, [session_id], "logout", now)
        self.db.commit()
        return {"ended": 1}

    @rpc
    def end_all_sessions(self, account_id, reason):
        """Every session of the account ends (password reset, recovery, a
        user's "sign out everywhere")."""
        now = self.clock()
        ended = self.db.revoke_account_sessions(account_id, reason, now)
        self.changes.sessions_ended(account_id, [], reason, now, count=len(ended))
        self.db.commit()
        return {"ended": len(ended)}

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
            self.db.audit("anonymous", account["id"], "username_recovered", now)
        self.db.commit()
        return _LOGIN_NAMES.dump({"login_names": names})

    def _recovery_failed(self, throttles, now):
        for policy, key in throttles:
            self.throttles.record(policy, key, now)
        self.db.commit()
