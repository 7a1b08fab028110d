"""Duplicate-ID resolution (an account in ``duplicate_pending``): a photo of
the person holding the ID card for a reviewer, or a verified classmate's
assistance (up to 5 requests a day); and the in-app inbox that carries the
requests and their outcomes. Mixed into ``RecoveryService``.

Either way, approval inserts the account's one ``duplicate_resolutions``
row (a second approval finds it and does nothing) with the outbox event
``duplicate_resolved``; identity moves the ID binding on it, once."""

import base64
import binascii
import logging
import uuid
from datetime import datetime

from eventlet import tpool

from services.common.contract.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    RuleViolation,
)
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.rpc import rpc
from services.common.plumbing.timers import timer
from services.common.rules.calendar import beijing_day
from services.recovery import domain, photos
from services.recovery.dependencies import HOUSEKEEPING_SECONDS
from services.recovery.schemas import (
    AccountRequest,
    AssistanceRequest,
    DecisionRequest,
    InboxAnswerRequest,
    InboxReadRequest,
    InboxRequest,
    NotMeRequest,
    PhotoRequest,
    ReviewRequest,
    ReviewsRequest,
)

__all__ = ["DuplicateEntrypoints"]

log = logging.getLogger(__name__)

_PHOTO = PhotoRequest()
_ACCOUNT = AccountRequest()
_ASSISTANCE = AssistanceRequest()
_REVIEWS = ReviewsRequest()
_REVIEW = ReviewRequest()
_DECISION = DecisionRequest()
_INBOX = InboxRequest()
_ANSWER = InboxAnswerRequest()
_READ = InboxReadRequest()
_NOT_ME = NotMeRequest()


def _review_view(row):
    view = {
        "review_id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "reason": row["reason"],
        "created_at": row["created_at"].isoformat(),
        "decided_at": row["decided_at"].isoformat() if row["decided_at"] else None,
        "service_level": domain.review_service_level(row["created_at"]),
    }
    return view


class DuplicateEntrypoints:
    """Duplicate ID, the review queue and the inbox. Needs ``db``,
    ``clock``, ``keys``, ``policy``, ``throttles``, ``mailbox``, ``vouching``
    and ``identity``."""

    def _pending_account(self, account_id):
        brief = self.identity.account_brief(str(account_id))
        domain.require_not_limited(brief["status"])
        return brief

    def _resolve(self, account_id, via, now):
        """The account holds the ID number now: once, whatever approves it
        (a holding move of the account applies at once under its own id)."""
        resolution_id = self.db.insert_resolution(
            str(account_id), str(uuid.uuid4()), via, now
        )
        if resolution_id is None:
            return False
        self._move_applied(str(account_id), resolution_id, via)
        return True

    def _move_applied(self, account_id, resolution_id, via):
        self.db.add_event(
            "duplicate_resolved",
            {"resolution_id": resolution_id, "account_id": account_id, "via": via},
        )

    def _hold_move(self, account_id, via, now):
        """Enough classmates said yes: the account holding the number is told
        (identity: every bound channel, with a "not me" link) and the move
        waits out the dispute window; both sides see it in their inbox. With
        no other holder left there is nobody to ask: it applies at once."""
        holder_id = self.identity.id_holder(account_id)["holder_id"]
        if holder_id is None:
            return self._resolve(account_id, via, now)
        effective_at = now + self.policy.dispute_window
        resolution_id = str(uuid.uuid4())
        if not self.db.hold_resolution(
            account_id=account_id, resolution_id=resolution_id, via=via, now=now,
            effective_at=effective_at, holder_id=holder_id,
        ):  # fmt: skip
            return False
        self.db.add_event(
            "duplicate_move_scheduled",
            {"resolution_id": resolution_id, "account_id": account_id,
             "holder_id": holder_id, "effective_at": effective_at.isoformat()},
        )  # fmt: skip
        state = {"state": domain.HOLDING, "effective_at": effective_at.isoformat()}
        self.mailbox.post(account_id, "duplicate_move", resolution_id,
                      {**state, "side": "requester"}, False, now)  # fmt: skip
        self.mailbox.post(holder_id, "duplicate_move", resolution_id,
                      {**state, "side": "holder"}, False, now)  # fmt: skip
        self.db.audit("recovery", account_id, "duplicate.move_scheduled", now,
                    resolution=resolution_id, holder=holder_id)  # fmt: skip
        return True

    def _tell_both(self, resolution, state, now):
        """Both sides' inbox: the move is now ``state`` (as of ``at``)."""
        for side, who in (("requester", resolution["account_id"]),
                          ("holder", resolution["holder_id"])):  # fmt: skip
            if who is not None:
                self.mailbox.post(who, "duplicate_move", resolution["resolution_id"],
                              {"state": state, "side": side,
                               "at": now.isoformat()}, False, now)  # fmt: skip

    @timer(interval=HOUSEKEEPING_SECONDS)
    def housekeeping(self):
        """Duplicate-ID moves whose dispute window ended take effect; photos
        past retention go."""
        self.apply_due_moves()
        self.purge_photos()

    @event_handler("registry_sync", "correction_answered")
    def on_correction_answered(self, payload, envelope):
        """The school answered a correction request: the student reads the
        outcome in the inbox (DOMAIN.md: "the outcome comes back to the
        student's inbox")."""
        self.mailbox.post(
            payload["account_id"],
            "correction_outcome",
            None,
            {
                "school_code": payload["school_code"],
                "status": payload["status"],
                "code": payload["code"],
            },
            False,
            self.clock(),
        )

    def apply_due_moves(self):
        """Holds whose dispute window ended undisputed take effect."""
        now = self.clock()
        due = self.db.due_resolutions(now)
        for row in due:
            self._move_applied(str(row["account_id"]), str(row["resolution_id"]),
                               row["via"])  # fmt: skip
            self._tell_both(row, domain.APPLIED, now)
        self.db.commit()
        if due:
            log.info("applied %s duplicate-ID moves after their window", len(due))

    @rpc
    def duplicate_move_notice(self, resolution_id):
        """identity asks what it tells the account holding the number: the
        "not me" link (good until the move takes effect) and that date."""
        row = self.db.resolution_by_id(str(resolution_id))
        self.db.rollback()
        if row is None or row["status"] != domain.HOLDING:
            raise NotFound("resolution_not_found")
        token = domain.sign_link(self.keys.link_key, "id_not_me",
                                 row["resolution_id"], row["effective_at"])  # fmt: skip
        return {
            "resolution_id": str(row["resolution_id"]),
            "holder_id": str(row["holder_id"]),
            "not_me_url": self.policy.url(f"/duplicate-id/not-me/{token}"),
            "effective_at": row["effective_at"].isoformat(),
        }

    @rpc
    def report_id_not_me(self, payload):
        """The holder's "not me" inside the window: the move stops and goes
        to the reviewers' queue; both sides are told in their inbox."""
        request = _NOT_ME.load(payload)
        now = self.clock()
        resolution_id, _ = domain.open_link(
            self.keys.link_key, "id_not_me", request["token"], now
        )
        row = self.db.resolution_by_id(str(resolution_id))
        if row is None:
            raise NotFound("share_link_invalid")
        if row["status"] == domain.DISPUTED:
            return {"resolution_id": str(resolution_id), "status": domain.DISPUTED}
        if row["status"] != domain.HOLDING or now >= row["effective_at"]:
            raise Conflict("cancel_window_over", {"status": row["status"]})
        self.db.set_resolution_status(str(resolution_id), domain.DISPUTED,
                                      (domain.HOLDING,), now)  # fmt: skip
        self.db.insert_review(
            id=str(uuid.uuid4()), kind="duplicate_dispute",
            account_id=str(row["account_id"]), sealed_photo=None, width=None,
            height=None, ref_id=str(resolution_id), now=now,
        )  # fmt: skip
        self._tell_both(row, domain.DISPUTED, now)
        self.db.audit("anonymous", row["holder_id"], "duplicate.move_disputed", now,
                    resolution=resolution_id)  # fmt: skip
        self.db.commit()
        return {"resolution_id": str(resolution_id), "status": domain.DISPUTED}

    # -- (a) the photo ------------------------------------------------------------------
    @rpc
    def submit_duplicate_photo(self, payload):
        request = _PHOTO.load(payload)
        now = self.clock()
        account_id = str(request["account_id"])
        self._pending_account(account_id)
        try:
            raw = base64.b64decode(request["photo_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("photo_not_image") from None
        limits = photos.PhotoLimits(
            max_bytes=self.policy.photo_max_bytes,
            max_pixels=self.policy.photo_max_pixels,
        )
        # Decoding and re-encoding is CPU work: off the event loop.
        clean, width, height = tpool.execute(photos.clean_photo, raw, limits)
        review_id = str(uuid.uuid4())
        self.db.insert_review(
            id=review_id,
            kind="duplicate_photo",
            account_id=account_id,
            sealed_photo=self.keys.photo_sealer.seal(base64.b64encode(clean).decode()),
            width=width,
            height=height,
            ref_id=None,
            now=now,
        )
        self.db.audit(f"account:{account_id}", account_id, "duplicate.photo_submitted",
                    now, review=review_id)  # fmt: skip
        self.db.commit()
        return _review_view(self.db.review(review_id))

    # -- (b) classmates' assistance ---------------------------------------------------
    @rpc
    def request_assistance(self, payload):
        """Name a classmate (name + phone) who is a verified student of the
        same school; they answer yes/no in their inbox. Every request counts
        toward the 5 a day, whoever it names (no free probing of who is who)."""
        request = _ASSISTANCE.load(payload)
        now = self.clock()
        account_id = str(request["account_id"])
        me = self._pending_account(account_id)
        if not me["school_code"]:
            raise RuleViolation("school_required")
        cap = self.policy.assistance_daily_cap
        day = beijing_day(now).isoformat()
        if not self.db.bump_counter(f"assist-day:{account_id}", day, cap):
            raise domain.daily_cap_refusal("assistance_daily_limit", now, cap)
        self.db.commit()  # the attempt counts even when refused below
        mate = self.identity.find_classmate(
            {"phone": request["classmate_phone"], "name": request["classmate_name"]}
        )
        if not domain.classmate_may_assist(me, mate):
            raise RuleViolation(
                "classmate_not_eligible",
                {
                    "remaining_today": cap
                    - self.db.counter(f"assist-day:{account_id}", day)
                },
            )
        request_id = str(uuid.uuid4())
        self.db.insert_assistance(
            id=request_id,
            account_id=account_id,
            classmate_id=mate["account_id"],
            now=now,
        )
        self.mailbox.post(
            mate["account_id"],
            "assistance_request",
            request_id,
            {"requester_name": me["name"], "school_code": me["school_code"]},
            True,
            now,
        )
        self.db.audit(f"account:{account_id}", account_id, "duplicate.assistance_requested",
                    now, request=request_id, classmate=mate["account_id"])  # fmt: skip
        self.db.commit()
        return {
            "request_id": request_id,
            "status": "open",
            "remaining_today": cap - self.db.counter(f"assist-day:{account_id}", day),
        }

    @rpc
    def duplicate_status(self, payload):
        """Where the student's duplicate stands: reviews with their reason and
        promised answer date, assistance requests, whether it is settled."""
        request = _ACCOUNT.load(payload)
        account_id = str(request["account_id"])
        brief = self.identity.account_brief(account_id)
        day = beijing_day(self.clock()).isoformat()
        cap = self.policy.assistance_daily_cap
        resolution = self.db.resolution(account_id)
        return {
            "account_status": brief["status"],
            "resolved": resolution is not None
            and resolution["status"] == domain.APPLIED,
            # The ID number's move: holding (until effective_at), applied,
            # disputed (a reviewer decides) or cancelled; None before any.
            "move": {
                "state": resolution["status"],
                "effective_at": resolution["effective_at"].isoformat()
                if resolution["effective_at"]
                else None,
            }
            if resolution is not None
            else None,
            "reviews": [
                _review_view(r)
                for r in self.db.reviews_of_account(account_id, "duplicate_photo")
            ],
            "assistance_requests": [
                {
                    "request_id": str(r["id"]),
                    "status": r["status"],
                    "created_at": r["created_at"].isoformat(),
                    "answered_at": r["answered_at"].isoformat()
                    if r["answered_at"]
                    else None,
                }
                for r in self.db.assistance_of_account(account_id)
            ],
            "assistance_remaining_today": max(
                0, cap - self.db.counter(f"assist-day:{account_id}", day)
            ),
        }

    # -- reviewers ------------------------------------------------------------------------
    @rpc
    def list_reviews(self, payload):
        request = _REVIEWS.load(payload)
        rows, total = self.db.reviews(
            request["status"], request["limit"], request["offset"]
        )
        self.db.audit(request["actor"], None, "review.listed", self.clock())
        self.db.commit()
        items = [
            {
                **_review_view(r),
                "account_id": str(r["account_id"]),
                "has_photo": r["photo_width"] is not None,
            }  # fmt: skip
            for r in rows
        ]
        next_offset = request["offset"] + len(items)
        return {
            "items": items,
            "total": total or 0,
            "next_offset": next_offset if total and next_offset < total else None,
        }

    @rpc
    def review_photo(self, payload):
        """The re-encoded JPEG, for a reviewer's eyes only (audited)."""
        request = _REVIEW.load(payload)
        sealed = self.db.review_photo(str(request["review_id"]))
        if sealed is None:
            raise NotFound("review_not_found")
        self.db.audit(request["actor"], None, "review.photo_viewed", self.clock(),
                    review=request["review_id"])  # fmt: skip
        self.db.commit()
        return {"jpeg_b64": self.keys.photo_sealer.open(sealed)}

    @rpc
    def decide_review(self, payload):
        request = _DECISION.load(payload)
        now = self.clock()
        review_id = str(request["review_id"])
        review = self.db.review(review_id, lock=True)
        if review is None:
            raise NotFound("review_not_found")
        if review["status"] != "open":
            raise Conflict("review_decided", {"status": review["status"]})
        status = "approved" if request["approve"] else "rejected"
        retention = self.policy.photo_retention
        self.db.decide_review(
            review_id, status, request["reason"], request["actor"], now + retention, now
        )
        account_id = str(review["account_id"])
        if review["kind"] == "duplicate_photo":
            if request["approve"]:
                self._resolve(account_id, f"review:{review_id}", now)
            self.mailbox.post(
                account_id,
                "review_outcome",
                review_id,
                {"status": status, "reason": request["reason"]},
                False,
                now,
            )
        elif review["kind"] == "duplicate_dispute":
            # Approve: the classmates were right, the number moves now;
            # reject: the holder keeps it.
            resolution = self.db.resolution_by_id(str(review["ref_id"]))
            state = domain.APPLIED if request["approve"] else domain.MOVE_CANCELLED
            if self.db.set_resolution_status(str(review["ref_id"]), state,
                                             (domain.DISPUTED,), now):  # fmt: skip
                if request["approve"]:
                    self._move_applied(account_id, str(review["ref_id"]),
                                       resolution["via"])  # fmt: skip
                self._tell_both(resolution, state, now)
        else:  # a disputed phone recovery: approve lifts the lock
            self.db.add_event(
                "recovery_dispute_decided",
                {
                    "review_id": review_id,
                    "account_id": account_id,
                    "unlock": request["approve"],
                    "decided_by": request["actor"][:64],
                },
            )
        self.db.audit(request["actor"], account_id, f"review.{status}", now,
                    review=review_id)  # fmt: skip
        self.db.commit()
        return _review_view(self.db.review(review_id))

    # -- inbox ------------------------------------------------------------------------------
    @rpc
    def inbox(self, payload):
        request = _INBOX.load(payload)
        account_id = str(request["account_id"])
        rows, counts = self.db.inbox(account_id, request["limit"], request["offset"])
        items = [
            {
                "message_id": str(r["id"]),
                "kind": r["kind"],
                "params": self.keys.inbox_sealer.open(r["sealed_params"]),
                "needs_answer": r["needs_answer"] and r["answered_at"] is None,
                "answer": r["answer"],
                "created_at": r["created_at"].isoformat(),
                "read": r["read_at"] is not None,
            }
            for r in rows
        ]
        next_offset = request["offset"] + len(items)
        return {
            "items": items,
            "total": counts["total"],
            "unread": counts["unread"],
            "to_answer": counts["to_answer"],
            "next_offset": next_offset if next_offset < counts["total"] else None,
        }

    @rpc
    def mark_message_read(self, payload):
        request = _READ.load(payload)
        account_id = str(request["account_id"])
        if self.db.message(account_id, str(request["message_id"])) is None:
            raise NotFound("message_not_found")
        self.db.mark_read(account_id, [str(request["message_id"])], self.clock())
        self.db.commit()
        return {"message_id": str(request["message_id"]), "read": True}

    @rpc
    def answer_message(self, payload):
        """Yes or no to an assistance request. The classmate must still be a
        verified student of the requester's school when answering."""
        request = _ANSWER.load(payload)
        now = self.clock()
        account_id = str(request["account_id"])
        message = self.db.message(account_id, str(request["message_id"]))
        if message is None:
            raise NotFound("message_not_found")
        if not message["needs_answer"]:
            raise Conflict("message_needs_no_answer")
        if message["answered_at"] is not None:
            if message["answer"] == request["approve"]:
                return {"message_id": str(message["id"]), "answer": message["answer"]}
            raise Conflict("message_answered", {"answer": message["answer"]})
        approve = request["approve"]
        if message["kind"] == "vouch_request":
            return self._answer_vouch_request(message, account_id, approve, now)
        assistance = self.db.assistance(str(message["ref_id"]))
        requester_id = str(assistance["account_id"])
        if approve:
            # A yes counts only from a helper who passes a voucher's guards.
            self.db.rollback()  # hold no lock while other services answer
            school_term = self._require_helper(requester_id, account_id, now)
            message = self.db.message(account_id, str(message["id"]))
            assistance = self.db.assistance(str(message["ref_id"]))
            if message["answered_at"] is not None:
                raise Conflict("message_answered", {"answer": message["answer"]})
            policy = self.policy
            day = beijing_day(now).isoformat()
            if not self.db.bump_counter(f"vouch-day:{account_id}", day,
                                        policy.vouch_daily_cap):  # fmt: skip
                domain.require_voucher_allowed("daily_cap")
            term = domain.term_period(now, school_term)
            if not self.db.bump_counter(f"vouch-term:{account_id}", term,
                                        policy.vouch_term_cap):  # fmt: skip
                domain.require_voucher_allowed("term_cap")
        self.db.answer_message(message["id"], approve, now)
        if assistance["status"] == "open":
            self.db.answer_assistance(
                assistance["id"], "approved" if approve else "declined", now
            )
            helpers = self.db.approved_helpers(requester_id) if approve else 0
            self.mailbox.post(
                requester_id,
                "assistance_outcome",
                assistance["id"],
                {"approved": approve, "helpers": helpers,
                 "helpers_needed": self.policy.vouches_needed},
                False,
                now,
            )  # fmt: skip
            if approve and domain.move_ready(helpers, self.policy):
                self._hold_move(requester_id, f"assistance:{assistance['id']}", now)
        self.db.audit(f"account:{account_id}", requester_id,
                    "duplicate.assistance_answered", now,
                    request=assistance["id"], approve=approve)  # fmt: skip
        self.db.commit()
        return {"message_id": str(message["id"]), "answer": approve}

    def _require_helper(self, requester_id, helper_id, now):
        """Raise ``not_eligible_voucher`` (with the reason) unless the helper
        passes the voucher's guards for this requester; else the school's
        current term."""
        me = self.identity.account_brief(helper_id)
        requester = self.identity.account_brief(requester_id)
        mates = self.registry_sync.classmates(
            {"account_id": requester_id, "other_account_id": helper_id}
        )
        since = mates.get("other_verified_since")
        facts = domain.HelperFacts(
            requester_id=requester_id,
            requester_school=requester["school_code"],
            requester_class=requester["class_name"],
            helper_id=helper_id,
            helper_status=me["status"],
            helper_created_at=datetime.fromisoformat(me["created_at"]),
            helper_verified=bool(mates.get("other_verified")),
            helper_school=mates.get("other_school_code"),
            helper_class=mates.get("other_class_name"),
            helper_verified_since=datetime.fromisoformat(since) if since else None,
            already_helped=self.db.has_helped(requester_id, helper_id),
        )
        domain.require_voucher_allowed(domain.helper_refusal(facts, now, self.policy))
        return mates.get("term")  # the school's current term, for the term cap

    def _answer_vouch_request(self, message, account_id, approve, now):
        """Yes: vouch (every guard of the share link applies, a refusal
        leaves the message unanswered); no: declined, nothing else."""
        message_id = str(message["id"])
        if approve:
            self.db.rollback()  # no lock on the message while others answer
            flow_id = str(message["ref_id"])
            flow = self.db.flow(flow_id)
            if flow is None:
                raise NotFound("recovery_not_found")
            self.vouching.vouch(
                flow,
                account_id,
                lambda: self.db.flow(flow_id, lock=True),
                now,
                lambda: self.db.answer_message(message_id, True, now),
            )
            return {"message_id": message_id, "answer": approve}
        self.db.answer_message(message_id, False, now)
        self.db.audit(f"account:{account_id}", None, "phone_recovery.vouch_declined",
                    now, flow=message["ref_id"])  # fmt: skip
        self.db.commit()
        return {"message_id": message_id, "answer": approve}

    def purge_photos(self):
        purged = self.db.purge_photos(self.clock())
        self.db.commit()
        if purged:
            log.info("purged %s review photos past retention", purged)
