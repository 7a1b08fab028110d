"""What identity does for the recovery service: find the account a flow is
about, check and hash a new password, answer which reset methods exist,
apply a completed phone recovery exactly once (and take it back on "not
me"), reset a password, move an ID number between accounts. Mixed into
``IdentityService``; recovery owns the flows, identity owns the accounts.

Every change arrives either as an outbox event from recovery (completion,
revert, duplicate resolved: applied once, keyed by recovery's own id) or
as an idempotent RPC (a password reset sets the same hash twice)."""

import logging
from datetime import datetime

from services.common.contract.errors import NotFound, ServiceError
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.rpc import rpc
from services.common.rules import realname
from services.common.rules.calendar import BEIJING, beijing_day
from services.common.rules.contacts import normalise_mobile
from services.common.rules.masking import mask_phone
from services.identity import domain, passwords
from services.identity.schemas import (
    ClassmateLookupRequest,
    NewPasswordRequest,
    RecoveryHandover,
    RecoveryMatchRequest,
    ResetPasswordRequest,
    ResetTargetsRequest,
    SecurityAnswersRequest,
    StudentsLookupRequest,
)

__all__ = ["RecoveryEntrypoints"]

log = logging.getLogger(__name__)

_MATCH = RecoveryMatchRequest()
_NEW_PASSWORD = NewPasswordRequest()
_RESET_TARGETS = ResetTargetsRequest()
_ANSWERS = SecurityAnswersRequest()
_RESET = ResetPasswordRequest()
_CLASSMATE = ClassmateLookupRequest()
_HANDOVER = RecoveryHandover()
_STUDENTS = StudentsLookupRequest()

_NOBODY = {"found": False}


def _same_name(a, b):
    try:
        return realname.comparable_name(a) == realname.comparable_name(b)
    except ServiceError:
        return False


class RecoveryEntrypoints:
    """Needs ``db``, ``clock``, ``keys``, ``hasher`` and the ``recovery``
    RPC proxy of the service."""

    # -- lookups ------------------------------------------------------------------
    @rpc
    def match_for_recovery(self, payload):
        """The account a forgot-phone flow is about: school + student number
        + name must all match one live account with a phone. The answer does
        not say which part failed."""
        request = _MATCH.load(payload)
        account = self.db.live_account_by_student(
            request["school_code"].strip().upper(), request["student_number"].strip()
        )
        if (
            account is None
            or not account["phone"]
            or not account["name"]
            or not _same_name(account["name"], request["name"])
        ):
            return _NOBODY
        return {
            "found": True,
            "account_id": str(account["id"]),
            "phone": account["phone"],
            "name": account["name"],
            "class_name": account["class_name"],
        }

    @rpc
    def hash_new_password(self, payload):
        """A new password checked against the rules and hashed (argon2id):
        recovery keeps the hash until two classmates vouched."""
        request = _NEW_PASSWORD.load(payload)
        password = passwords.check_password_rules(request["password"])
        return {"password_hash": self.hasher.hash(password)}

    @rpc
    def check_new_password(self, payload):
        """The password rules alone (recovery checks them before a code or
        the answers are used up)."""
        request = _NEW_PASSWORD.load(payload)
        passwords.check_password_rules(request["password"])
        return {"ok": True}

    @rpc
    def reset_targets(self, payload):
        """Where a reset of ``login``'s password can be proved: its phone,
        its email, its security questions (texts only)."""
        request = _RESET_TARGETS.load(payload)
        account = self._account_for_login(request["login"])
        if account is None:
            return _NOBODY
        questions = account["security_questions"] or []
        return {
            "found": True,
            "account_id": str(account["id"]),
            "phone": account["phone"],
            "email": account["email"],
            "questions": [q["question"] for q in questions],
        }

    def _account_for_login(self, login):
        kind, value = domain.classify_login(login)
        if kind == "unknown":
            return None
        lookup = {"id_hashes": ()}
        if kind == "id_number":
            lookup["id_hashes"] = [
                self.keys.lookup_hash(id_type, number)
                for id_type, number in domain.id_number_candidates(
                    value, beijing_day(self.clock())
                )
            ]
        else:
            lookup[kind] = value
        return self.db.live_account_by_login(**lookup)

    @rpc
    def check_security_answers(self, payload):
        """All three answers, normalised as they were stored, must match."""
        request = _ANSWERS.load(payload)
        account = self.db.account(str(request["account_id"]))
        stored = (account or {}).get("security_questions") or []
        self.db.rollback()
        if len(stored) != 3:
            return {"correct": False}
        results = [
            self.hasher.verify(item["answer_hash"], domain.normalise_answer(answer))
            for item, answer in zip(stored, request["answers"], strict=True)
        ]
        return {"correct": all(results)}

    @rpc
    def account_brief(self, account_id):
        """What recovery decides with: status, school, class, when created."""
        account = self.db.account(str(account_id))
        if account is None or account["status"] == "deactivated":
            raise NotFound("account_not_found")
        return {
            "account_id": str(account["id"]),
            "status": account["status"],
            "school_code": account["school_code"],
            "class_name": account["class_name"],
            "registry_status": account["registry_status"],
            "name": account["name"],
            "created_at": account["created_at"].isoformat(),
            "locked": account["locked_at"] is not None,
        }

    @rpc
    def id_holder(self, account_id):
        """Which other live account holds this (duplicate_pending) account's
        ID number now: the account a duplicate-ID move would take it from."""
        account = self.db.account(str(account_id))
        if account is None or not account["id_number_hash"]:
            return {"holder_id": None}
        holder = self.db.active_account_by_id_hash(account["id_number_hash"])
        if holder is None or str(holder["id"]) == str(account_id):
            return {"holder_id": None}
        return {"holder_id": str(holder["id"])}

    @rpc
    def find_classmate(self, payload):
        """A classmate named by phone and name (duplicate-ID assistance)."""
        request = _CLASSMATE.load(payload)
        try:
            phone = normalise_mobile(request["phone"])
        except ServiceError:
            return _NOBODY
        account = self.db.live_account_with_phone(phone)
        if account is None or not _same_name(account["name"] or "", request["name"]):
            return _NOBODY
        return {
            "found": True,
            "account_id": str(account["id"]),
            "status": account["status"],
            "school_code": account["school_code"],
            "class_name": account["class_name"],
            "registry_status": account["registry_status"],
        }

    @rpc
    def accounts_of_students(self, payload):
        """Account ids of a school's students by number (the classmates a
        forgot-phone requester invites to vouch); unknown numbers are left
        out."""
        request = _STUDENTS.load(payload)
        school = request["school_code"].strip().upper()
        found = {}
        for number in dict.fromkeys(n.strip() for n in request["student_numbers"]):
            account = self.db.live_account_by_student(school, number)
            if account is not None:
                found[number] = str(account["id"])
        return {"accounts": found}

    # -- password reset --------------------------------------------------------------
    @rpc
    def reset_password(self, payload):
        """Recovery proved the reset (a code or the answers): set the new
        password, end every session, announce it on every bound channel. It
        does not log the user in."""
        request = _RESET.load(payload)
        now = self.clock()
        password = passwords.check_password_rules(request["password"])
        account = domain.require_live(self.db.account(str(request["account_id"])))
        password_hash = self.hasher.hash(password)
        account_id = str(account["id"])
        account = self.db.account(account_id, for_update=True)
        self.db.update_password(account_id, password_hash, now)
        ended = self.db.revoke_account_sessions(account_id, "password_reset", now)
        self.changes.sessions_ended(
            account_id, [], "password_reset", now, count=len(ended)
        )
        self.db.audit(
            account_id, account_id, "password_reset", now, method=request["method"]
        )
        self.changes.announce(
            "password_reset", account, now, request["device_id"], request["client_ip"]
        )
        self.db.commit()
        return {"sessions_ended": len(ended)}

    # -- forgot phone: hand-over and revert ------------------------------------------
    @event_handler("recovery", "phone_recovery_completed")
    def on_phone_recovery_completed(self, payload, envelope):
        """Two classmates vouched: take the hand-over from recovery and apply
        it once (``account_recoveries`` is keyed by the flow's id)."""
        recovery_id = str(payload["recovery_id"])
        if self.db.account_recovery(recovery_id) is not None:
            return  # applied before (a redelivery after a crash)
        handover = _HANDOVER.load(self.recovery.recovery_handover(recovery_id))
        now = self.clock()
        account_id = str(handover["account_id"])
        account = self.db.account(account_id, for_update=True)
        if account is None or account["status"] == "deactivated":
            log.warning("recovery %s: account gone, nothing to apply", recovery_id)
            return
        sealed_old = (
            self.keys.notice_sealer.seal(account["phone"]) if account["phone"] else None
        )
        if not self.db.insert_account_recovery(
            recovery_id, account_id, sealed_old, account["password_hash"], now
        ):
            return  # applied before (a redelivery after a crash)
        new_phone = normalise_mobile(handover["new_phone"])
        if new_phone != account["phone"]:
            self.changes.take_over_phone(new_phone, account_id, now)
        self.db.set_phone_and_password(
            account_id, new_phone, handover["password_hash"], now
        )
        ended = self.db.revoke_account_sessions(account_id, "phone_recovered", now)
        self.changes.sessions_ended(
            account_id, [], "phone_recovered", now, count=len(ended)
        )
        self.db.audit(
            "recovery", account_id, "phone_recovered", now, recovery_id=recovery_id
        )
        # The new phone hears it worked; every channel bound before (the old
        # phone, which may not be lost at all, and the email) gets the link.
        self.changes.announce(
            "phone_recovered",
            {"id": account_id, "phone": new_phone, "email": None},
            now,
            phone_masked=mask_phone(new_phone),
        )
        self.changes.announce(
            "phone_recovered_elsewhere",
            account,
            now,
            phone_masked=mask_phone(new_phone),
            not_me_url=handover["not_me_url"],
        )
        self.db.add_event(
            "phone_recovery_applied",
            {"recovery_id": recovery_id, "account_id": account_id},
        )
        log.info("recovery %s applied to %s", recovery_id, account_id)

    @event_handler("recovery", "phone_recovery_reverted")
    def on_phone_recovery_reverted(self, payload, envelope):
        """ "Not me": lock the account, end its sessions, put the old phone
        back (unless someone else holds it now); a reviewer decides next."""
        recovery_id = str(payload["recovery_id"])
        now = self.clock()
        applied = self.db.account_recovery(recovery_id)
        if applied is None or applied["reverted_at"] is not None:
            return
        account_id = str(applied["account_id"])
        account = self.db.account(account_id, for_update=True)
        if account is None or account["status"] == "deactivated":
            return
        old_phone = (
            self.keys.notice_sealer.open(applied["sealed_old_phone"])
            if applied["sealed_old_phone"]
            else None
        )
        holder = self.db.live_account_by_phone(old_phone) if old_phone else None
        restore = old_phone if holder is None else None
        self.db.set_phone_and_password(
            account_id, restore, applied["old_password_hash"], now
        )
        self.db.lock_account(account_id, "recovery_disputed", now)
        self.db.mark_recovery_reverted(recovery_id, now)
        ended = self.db.revoke_account_sessions(account_id, "recovery_disputed", now)
        self.changes.sessions_ended(
            account_id, [], "recovery_disputed", now, count=len(ended)
        )
        self.db.audit(
            "recovery",
            account_id,
            "phone_recovery_reverted",
            now,
            recovery_id=recovery_id,
            phone_restored=restore is not None,
        )
        self.changes.announce(
            "recovery_reverted",
            {"id": account_id, "phone": restore, "email": account["email"]},
            now,
        )

    @event_handler("recovery", "recovery_dispute_decided")
    def on_recovery_dispute_decided(self, payload, envelope):
        """A reviewer settled a "not me": approve unlocks the account."""
        now = self.clock()
        account_id = str(payload["account_id"])
        if payload["unlock"] and self.db.unlock_account(account_id, now):
            self.db.audit(
                f"reviewer:{payload['decided_by']}",
                account_id,
                "account_unlocked",
                now,
                review_id=str(payload["review_id"]),
            )

    # -- duplicate ID ---------------------------------------------------------------------
    @event_handler("recovery", "duplicate_move_scheduled")
    def on_duplicate_move_scheduled(self, payload, envelope):
        """Before an ID number moves away, its holder hears it on every bound
        channel, with a "not me" link good until the move takes effect. The
        notices' own outbox rows make this once per resolution."""
        holder = self.db.account(str(payload["holder_id"]))
        if holder is None or holder["status"] == "deactivated":
            return
        notice = self.recovery.duplicate_move_notice(str(payload["resolution_id"]))
        effective = datetime.fromisoformat(notice["effective_at"])
        self.changes.announce(
            "id_binding_move_scheduled",
            holder,
            self.clock(),
            effective_date=effective.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M"),
            not_me_url=notice["not_me_url"],
        )
        self.db.audit(
            "recovery", str(holder["id"]), "id_binding_move_announced", self.clock(),
            resolution_id=str(payload["resolution_id"]),
        )  # fmt: skip

    @event_handler("recovery", "duplicate_resolved")
    def on_duplicate_resolved(self, payload, envelope):
        """A reviewer or a classmate confirmed this account holds the ID
        number: the binding moves to it in one transaction. The old account
        keeps existing (its other login names, its data), loses only the ID
        binding, and is told."""
        now = self.clock()
        account_id = str(payload["account_id"])
        resolution_id = str(payload["resolution_id"])
        account = self.db.account(account_id, for_update=True)
        if account is None or account["status"] != "duplicate_pending":
            log.info("duplicate %s: account not pending, nothing to move", account_id)
            return
        holder = self.db.active_account_by_id_hash(account["id_number_hash"])
        holder_id = str(holder["id"]) if holder else None
        if not self.db.insert_id_move(resolution_id, account_id, holder_id, now):
            return
        if holder is not None:
            old = self.db.account(holder_id, for_update=True)
            self.db.clear_id_binding(holder_id, now)
            self.db.audit(
                "recovery",
                holder_id,
                "id_binding_moved_away",
                now,
                resolution_id=resolution_id,
                to_account_id=account_id,
            )
            self.changes.announce("id_binding_moved", old, now)
        self.db.activate_account(account_id, now)
        self.db.audit(
            "recovery",
            account_id,
            "id_binding_moved_here",
            now,
            resolution_id=resolution_id,
            from_account_id=holder_id,
            via=payload["via"],
        )
        self.db.add_event(
            "id_binding_moved",
            {"account_id": account_id, "from_account_id": holder_id},
        )
