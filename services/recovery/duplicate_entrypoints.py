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
from datetime import timedelta

from eventlet import tpool

from services.common.calendar import beijing_day
from services.common.errors import Conflict, InvalidRequest, NotFound, RuleViolation
from services.common.rpc import rpc
from services.recovery import domain, photos
from services.recovery.schemas import (
    AccountRequest,
    AssistanceRequest,
    DecisionRequest,
    InboxAnswerRequest,
    InboxReadRequest,
    InboxRequest,
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
    """Needs ``db``, ``clock``, ``keys``, ``config`` and ``identity``."""

    def _pending_account(self, account_id):
        brief = self.identity.account_brief(str(account_id))
        domain.require_not_limited(brief["status"])
        return brief

    def _message(self, account_id, kind, ref_id, params, needs_answer, now):
        self.db.insert_message(
            id=str(uuid.uuid4()),
            account_id=str(account_id),
            kind=kind,
            ref_id=str(ref_id) if ref_id else None,
            sealed_params=self.keys.inbox_sealer.seal(params),
            needs_answer=needs_answer,
            now=now,
        )

    def _resolve(self, account_id, via, now):
        """The account holds the ID number: once, whatever approves it."""
        resolution_id = str(uuid.uuid4())
        if self.db.insert_resolution(str(account_id), resolution_id, via, now):
            self.db.add_event(
                "duplicate_resolved",
                {
                    "resolution_id": resolution_id,
                    "account_id": str(account_id),
                    "via": via,
                },  # fmt: skip
            )
            return True
        return False

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
            max_bytes=int(self.config.get("PHOTO_MAX_BYTES", 5 * 1024 * 1024)),
            max_pixels=int(self.config.get("PHOTO_MAX_PIXELS", 24_000_000)),
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
        self._audit(f"account:{account_id}", account_id, "duplicate.photo_submitted",
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
        self._message(
            mate["account_id"],
            "assistance_request",
            request_id,
            {"requester_name": me["name"], "school_code": me["school_code"]},
            True,
            now,
        )
        self._audit(f"account:{account_id}", account_id, "duplicate.assistance_requested",
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
            "resolved": resolution is not None,
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
        self._audit(request["actor"], None, "review.listed", self.clock())
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
        self._audit(request["actor"], None, "review.photo_viewed", self.clock(),
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
        retention = timedelta(days=float(self.config.get("PHOTO_RETENTION_DAYS", 30)))
        self.db.decide_review(
            review_id, status, request["reason"], request["actor"], now + retention, now
        )
        account_id = str(review["account_id"])
        if review["kind"] == "duplicate_photo":
            if request["approve"]:
                self._resolve(account_id, f"review:{review_id}", now)
            self._message(
                account_id,
                "review_outcome",
                review_id,
                {"status": status, "reason": request["reason"]},
                False,
                now,
            )
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
        self._audit(request["actor"], account_id, f"review.{status}", now,
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
        if approve:
            me = self.identity.account_brief(account_id)
            requester = self.identity.account_brief(str(assistance["account_id"]))
            if me["registry_status"] != "passed" or (
                me["school_code"] != requester["school_code"]
            ):
                raise Conflict("classmate_not_eligible")
        self.db.answer_message(message["id"], approve, now)
        if assistance["status"] == "open":
            self.db.answer_assistance(
                assistance["id"], "approved" if approve else "declined", now
            )
            requester_id = str(assistance["account_id"])
            if approve:
                self._resolve(requester_id, f"assistance:{assistance['id']}", now)
            self._message(
                requester_id,
                "assistance_outcome",
                assistance["id"],
                {"approved": approve},
                False,
                now,
            )
        self._audit(f"account:{account_id}", str(assistance["account_id"]),
                    "duplicate.assistance_answered", now,
                    request=assistance["id"], approve=approve)  # fmt: skip
        self.db.commit()
        return {"message_id": str(message["id"]), "answer": approve}

    def _answer_vouch_request(self, message, account_id, approve, now):
        """Yes: vouch (every guard of the share link applies, a refusal
        leaves the message unanswered); no: declined, nothing else."""
        message_id = str(message["id"])
        if approve:
            self.db.rollback()  # no lock on the message while others answer
            self.vouch_from_inbox(
                message,
                account_id,
                now,
                lambda: self.db.answer_message(message_id, True, now),
            )
            return {"message_id": message_id, "answer": approve}
        self.db.answer_message(message_id, False, now)
        self._audit(f"account:{account_id}", None, "phone_recovery.vouch_declined",
                    now, flow=message["ref_id"])  # fmt: skip
        self.db.commit()
        return {"message_id": message_id, "answer": approve}

    def purge_photos(self):
        purged = self.db.purge_photos(self.clock())
        self.db.commit()
        if purged:
            log.info("purged %s review photos past retention", purged)
