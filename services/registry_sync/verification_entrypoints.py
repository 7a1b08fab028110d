"""Registry verification (学籍核验) entrypoints of registry_sync: a student
submits, the outcome follows the roster by itself, school admins list,
refresh and link, recovery asks who is whose classmate. Mixed into
``RegistrySyncService``; the state diagram and the matching rules are in
``domain.py``, the SQL in ``store.py``."""

import logging

from services.common.contract.errors import Forbidden, NotFound, RuleViolation
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.rpc import rpc
from services.common.rules.calendar import beijing_day
from services.registry_sync import domain
from services.registry_sync.schemas import (
    AccountRequest,
    AdminStudentRequest,
    ClassmatesRequest,
    CorrectionRequest,
    LinkRequest,
    SubmitVerificationRequest,
    UnmatchedItem,
    UnmatchedRequest,
    VerificationState,
)

__all__ = ["VerificationEntrypoints"]

log = logging.getLogger(__name__)

_SUBMIT = SubmitVerificationRequest()
_ACCOUNT = AccountRequest()
_ADMIN_STUDENT = AdminStudentRequest()
_LINK = LinkRequest()
_UNMATCHED = UnmatchedRequest()
_UNMATCHED_ITEM = UnmatchedItem()
_STATE = VerificationState()
_CLASSMATES = ClassmatesRequest()
_CORRECTION = CorrectionRequest()


def _state(row):
    next_step = (
        domain.NEXT_STEPS.get(row["code"]) if row["status"] == "failed" else None
    )
    return _STATE.dump(
        {**row, "mismatches": row["mismatches"] or [], "next_step": next_step}
    )


class VerificationEntrypoints:
    """Needs ``db``, ``clock``, ``keys``, ``verifier`` and the ``identity``
    RPC proxy of the service."""

    # -- students ---------------------------------------------------------------
    @rpc
    def submit_verification(self, payload):
        """Submit (or resubmit) where an account's registry record is; the
        answer is the outcome as of now (pending ones settle by themselves
        later). The record is compared with the account's own real-name data
        from identity; the name (and ID number) typed into the form are kept
        for the school's eyes only and decide nothing."""
        request = _SUBMIT.load(payload)
        now = self.clock()
        account_id = str(request["account_id"])
        # identity answers before any row here is locked.
        submission = domain.new_submission(
            self.identity.real_name_of(account_id),
            class_name=request["class_name"],
            grade=request["grade"],
            typed_name=request["name"],
        )
        row = self.db.save_submission(
            account_id,
            request["school_code"],
            request["student_number"],
            self.keys.submission_sealer.seal(submission),
            now,
        )
        saved = self.verifier.check(row, now, announce=True)
        self.db.commit()
        return _state(saved)

    @rpc
    def verification_status(self, payload):
        request = _ACCOUNT.load(payload)
        row = self.db.verification(str(request["account_id"]))
        if row is None:
            raise NotFound("verification_not_found")
        return _state(row)

    @rpc
    def request_correction(self, payload):
        """One step from a failure: the student's note goes to the school's
        unmatched list beside the differing fields (never the registry's
        values, which the student does not see either)."""
        request = _CORRECTION.load(payload)
        account_id = str(request["account_id"])
        row = self.db.set_correction_note(account_id, request["note"], self.clock())
        if row is None:
            current = self.db.verification(account_id)
            if current is None:
                raise NotFound("verification_not_found")
            raise RuleViolation("verification_not_failed")
        self.db.audit(
            f"account:{account_id}",
            row["school_code"],
            "student.correction_requested",
            self.clock(),
            account_id=account_id,
        )
        self.db.commit()
        return _state(row)

    @event_handler("identity", "auth_info_changed")
    def on_auth_info_changed(self, payload, envelope):
        """School, name or student number changed: the verification goes back
        to pending and the same comparison runs again on the account as it is
        now (its new name; its new school and number when those changed)."""
        if not payload["registry_reset"]:
            return
        account_id = str(payload["account_id"])
        row = self.db.verification(account_id)
        if row is None:
            return  # never submitted: nothing to re-run
        own = self.identity.real_name_of(account_id)
        now = self.clock()
        row = self.db.verification(account_id, lock=True)
        if row is None:
            return
        if row["linked_by"]:
            # A school linked the account as it was; renamed, it waits for
            # the student to submit again (or the school to link again).
            self.db.reset_verification(account_id, now)
            return
        previous = self.keys.submission_sealer.open(row["submission"])
        submission = domain.new_submission(
            own,
            class_name=previous.get("class_name"),
            grade=previous.get("grade"),
            typed_name=previous.get("typed_name") or previous.get("name"),
        )
        school_code = own.get("school_code") or row["school_code"]
        number = own.get("student_number") or row["student_number"]
        row = self.db.save_submission(
            account_id,
            school_code,
            number,
            self.keys.submission_sealer.seal(submission),
            now,
        )
        self.verifier.check(row, now, announce=True)

    # -- school admins ----------------------------------------------------------
    def _admin_row(self, request):
        row = self.db.verification(str(request["account_id"]), lock=True)
        if row is None or row["school_code"] != request["school_code"]:
            # Another school's student is as unknown as a missing one.
            raise NotFound("verification_not_found")
        return row

    def _admin_audit(self, request, action, **ids):
        self.db.audit(
            request["actor"], request["school_code"], action, self.clock(), **ids
        )

    @rpc
    def list_unmatched(self, payload):
        request = _UNMATCHED.load(payload)
        rows, total = self.db.unmatched(
            request["school_code"],
            request["status"],
            request["limit"],
            request["offset"],
        )
        self._admin_audit(request, "admin.unmatched_listed")
        self.db.commit()
        items = [
            _UNMATCHED_ITEM.dump({**row, "mismatches": row["mismatches"] or []})
            for row in rows
        ]
        next_offset = request["offset"] + len(items)
        return {
            "items": items,
            "total": total if total is not None else 0,
            "next_offset": next_offset if total and next_offset < total else None,
        }

    @rpc
    def refresh_verification(self, payload):
        """Re-run matching for one student now (the admin fixed the roster
        or wants to see the current answer)."""
        request = _ADMIN_STUDENT.load(payload)
        row = self._admin_row(request)
        saved = self.verifier.check(row, self.clock(), announce=True)
        self._admin_audit(
            request, "admin.verification_refreshed", account_id=request["account_id"]
        )
        self.db.commit()
        return _state(saved)

    @rpc
    def link_verification(self, payload):
        """A school admin vouches that this account is this registry record
        (the reason is kept with the link, the audit names who and which)."""
        request = _LINK.load(payload)
        school_code, number = request["school_code"], request["student_number"]
        record = self.db.record_by_number(school_code, number)
        if record is None:
            raise NotFound("student_record_not_found")
        outcome = domain.linked_outcome(record)
        if outcome.status != "passed":
            raise RuleViolation(outcome.code)
        account_id = str(request["account_id"])
        current = self.db.verification(account_id)
        if not domain.may_link(current, school_code):
            # Another school's student (or one verified there): not this
            # admin's to move. Audited, and as unknown as a missing account.
            self._admin_audit(request, "admin.link_refused", account_id=account_id)
            self.db.commit()
            raise Forbidden("link_not_allowed")
        if self.db.claimed_by_other(school_code, number, account_id):
            raise RuleViolation("record_claimed")
        now = self.clock()
        self.db.save_link(
            account_id,
            school_code,
            number,
            self.keys.submission_sealer.seal({}),
            request["actor"],
            request["reason"],
            now,
        )
        saved = self.verifier.check(
            self.db.verification(account_id, lock=True), now, True
        )
        self._admin_audit(
            request,
            "admin.verification_linked",
            account_id=account_id,
            student_id=record["id"],
        )
        self.db.commit()
        return _state(saved)

    # -- recovery ------------------------------------------------------------------
    @rpc
    def classmates(self, payload):
        """Is ``other_account_id`` a verified student of the same school (and
        class, where the registry knows both classes) as ``account_id``, and
        since when has it been verified? Verification follows the roster, so
        a student whose record went inactive is no longer anyone's classmate."""
        request = _CLASSMATES.load(payload)
        one, other = str(request["account_id"]), str(request["other_account_id"])
        rows = self.db.classmate_rows([one, other])
        mine, theirs = rows.get(one), rows.get(other)
        both_passed = (
            one != other
            and mine is not None
            and theirs is not None
            and mine["status"] == theirs["status"] == "passed"
        )
        same_school = both_passed and mine["school_code"] == theirs["school_code"]
        same_class = None
        if same_school and mine["class_name"] and theirs["class_name"]:
            same_class = domain.comparable_label(
                mine["class_name"]
            ) == domain.comparable_label(theirs["class_name"])
        term = None
        if same_school:
            terms = self.db.school_terms(mine["school_code"], beijing_day(self.clock()))
            term = terms["explicit"] or (sorted(terms["covering"]) or [None])[0]
        return {
            "classmates": bool(same_school and same_class is not False),
            "same_school": bool(same_school),
            "same_class": same_class,
            # Which side is not verified, so recovery can say which.
            "account_verified": bool(mine and mine["status"] == "passed"),
            "other_verified": bool(theirs and theirs["status"] == "passed"),
            # The school's current term (per-term vouch caps count in it).
            "term": term,
            "school_code": mine["school_code"] if mine else None,
            # The other account's own place (duplicate-ID assistance: the
            # requester may hold no passed verification of its own).
            "other_school_code": theirs["school_code"]
            if theirs and theirs["status"] == "passed"
            else None,
            "other_class_name": theirs["class_name"]
            if theirs and theirs["status"] == "passed"
            else None,
            "other_verified_since": theirs["verified_since"].isoformat()
            if theirs and theirs["status"] == "passed" and theirs["verified_since"]
            else None,
            "verified_since": theirs["verified_since"].isoformat()
            if same_school and theirs["verified_since"]
            else None,
        }
