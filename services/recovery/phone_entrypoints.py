"""Forgot phone, by two classmates' vouching. Mixed into
``RecoveryService``; the states and steps are ``domain.STEPS`` (drawn in
``phone_recovery.mermaid``), the SQL in ``store.py``.

Pattern: every step first re-reads the flow and checks its step against
the state (a step out of order or replayed finds the wrong state), does
the checks that call other services with no row lock held, then locks the
flow row, checks the state again and writes the change with its audit row
and outbox events in one transaction."""

import hmac
import logging
import uuid

from services.common.contract.errors import (
    Conflict,
    NotFound,
    RuleViolation,
    ServiceError,
)
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.rpc import rpc
from services.common.plumbing.timers import timer
from services.common.rules.contacts import canonical_text, normalise_mobile
from services.common.rules.masking import mask_phone
from services.common.rules.throttles import address_key
from services.recovery import domain
from services.recovery.dependencies import HOUSEKEEPING_SECONDS, AnswerFloor
from services.recovery.schemas import (
    FlowRequest,
    InvitationRequest,
    NewPhoneRequest,
    NotMeRequest,
    ShareRequest,
    StartRecoveryRequest,
)

__all__ = ["PhoneRecoveryEntrypoints"]

log = logging.getLogger(__name__)

_START = StartRecoveryRequest()
_NEW_PHONE = NewPhoneRequest()
_FLOW = FlowRequest()
_SHARE = ShareRequest()
_NOT_ME = NotMeRequest()
_INVITE = InvitationRequest()


class PhoneRecoveryEntrypoints:
    """Needs ``db``, ``clock``, ``keys``, ``policy``, ``throttles``,
    ``mailbox``, ``vouching``, ``identity``, ``verification`` and
    ``registry_sync`` of the service."""

    def _requester_flow(self, request, lock=False):
        """The flow, if the caller holds its requester token."""
        flow = self.db.flow(str(request["recovery_id"]), lock=lock)
        if flow is None or not domain_tokens_equal(
            flow["requester_token_hash"],
            self.keys.hash("requester", request["recovery_token"]),
        ):
            raise NotFound("recovery_not_found")
        return flow

    # -- step 1: who is asking -----------------------------------------------------
    @rpc
    def start_phone_recovery(self, payload):
        """School + student number + name. The answer has the same status,
        shape and timing whether or not they match an account: a decoy flow
        is made for no match (its hint is derived from what was typed), and
        it fails at the old phone like a wrong guess."""
        request = _START.load(payload)
        floor = AnswerFloor(self.policy.answer_floor_seconds)
        now = self.clock()
        school = request["school_code"].strip().upper()
        number = request["student_number"].strip()
        target = (canonical_text(school), canonical_text(number))
        per_ip = self.policy.match_per_ip
        per_target = self.policy.match_per_target
        self.throttles.hit(per_ip, per_ip.key(address_key(request["client_ip"])), now)
        self.throttles.hit(
            per_target, per_target.key(self.keys.hash("target", *target)), now
        )
        match = self.identity.match_for_recovery(
            {"school_code": school, "student_number": number, "name": request["name"]}
        )
        token = domain.new_secret_token()
        flow_id = str(uuid.uuid4())
        account_id = match["account_id"] if match["found"] else None
        if match["found"]:
            hint = domain.old_phone_hint(match["phone"])
            old_phone_hash = self.keys.hash("old_phone", flow_id, match["phone"])
            sealed = self.keys.flow_sealer.seal(
                {"name": match["name"], "class_name": match["class_name"]}
            )
            # A flow still at step 1 is replaced; one past the old phone is
            # kept (it holds proof) and this start gets a shadow: the same
            # answer, but it can never pass the old phone. Either way the
            # answer does not tell that a flow exists.
            if self.db.supersede_open(account_id, now):
                account_id, old_phone_hash, sealed = None, None, None
        else:
            hint = domain.decoy_hint(
                self.keys.digest("decoy-hint", school, number, request["name"].strip())
            )
            old_phone_hash, sealed = None, None
        expires_at = now + self.policy.flow_ttl
        self.db.insert_flow(
            id=flow_id,
            account_id=account_id,
            school_code=school,
            requester_token_hash=self.keys.hash("requester", token),
            old_phone_hash=old_phone_hash,
            old_phone_hint=hint,
            sealed_requester=sealed,
            vouches_needed=self.policy.vouches_needed,
            expires_at=expires_at,
            now=now,
        )
        self.db.audit(
            "anonymous", account_id, "phone_recovery.started", now, flow=flow_id
        )
        self.db.commit()
        floor.wait()
        return {
            "recovery_id": flow_id,
            "recovery_token": token,
            "old_phone_hint": hint,
            "expires_at": expires_at.isoformat(),
        }

    # -- step 2: old phone, new phone + code, new password -------------------------
    @rpc
    def set_new_phone(self, payload):
        request = _NEW_PHONE.load(payload)
        now = self.clock()
        flow = self._requester_flow(request)
        domain.require_step("set_new_phone", flow["status"], flow["expires_at"], now)
        try:
            old_phone = normalise_mobile(request["old_phone"])
        except ServiceError:
            old_phone = request["old_phone"].strip()
        typed = self.keys.hash("old_phone", str(flow["id"]), old_phone)
        if flow["old_phone_hash"] is None or not domain_tokens_equal(
            flow["old_phone_hash"], typed
        ):
            limit = self.policy.old_phone_attempts
            row = self.db.old_phone_failed(flow["id"], limit, now)
            self.db.audit("anonymous", flow["account_id"], "phone_recovery.old_phone_wrong",
                        now, flow=flow["id"])  # fmt: skip
            self.db.commit()
            raise RuleViolation(
                "old_phone_mismatch",
                {"attempts_left": max(0, limit - row["old_phone_failures"])},
            )
        new_phone = normalise_mobile(request["new_phone"])
        if new_phone == old_phone:
            raise RuleViolation("same_as_old_phone")
        self.db.rollback()
        # The password rules before the code, so a refused password does
        # not burn the code; identity hashes it (argon2id).
        hashed = self.identity.hash_new_password({"password": request["new_password"]})
        self.verification.check_code(
            {
                "destination": new_phone,
                "purpose": "recover_phone",
                "code": request["code"],
                "client_ip": request["client_ip"],
            }
        )
        flow = self._requester_flow(request, lock=True)
        domain.require_step("set_new_phone", flow["status"], flow["expires_at"], now)
        share_expires = now + self.policy.flow_ttl
        share_token = domain.sign_link(self.keys.link_key, "share", flow["id"],
                                       share_expires)  # fmt: skip
        self.db.set_new_phone(
            flow["id"],
            self.keys.flow_sealer.seal(new_phone),
            hashed["password_hash"],
            self.keys.hash("share", share_token),
            share_expires,
            now,
        )
        self.db.audit("anonymous", flow["account_id"], "phone_recovery.new_phone_set",
                    now, flow=flow["id"])  # fmt: skip
        self.db.commit()
        return {
            "share_url": self.policy.url(f"/v/{share_token}"),
            "share_token": share_token,
            "vouches": 0,
            "vouches_needed": flow["vouches_needed"],
            "expires_at": share_expires.isoformat(),
            "new_phone_masked": mask_phone(new_phone),
        }

    @rpc
    def phone_recovery_progress(self, payload):
        request = _FLOW.load(payload)
        flow = self._requester_flow(request)
        return self._progress(flow, self.clock())

    def _progress(self, flow, now):
        return {
            "recovery_id": str(flow["id"]),
            "status": domain.effective_status(flow["status"], flow["expires_at"], now),
            "vouches": flow["vouches"],
            "vouches_needed": flow["vouches_needed"],
            "expires_at": flow["expires_at"].isoformat(),
            "old_phone_hint": flow["old_phone_hint"],
            "completed_at": flow["completed_at"].isoformat()
            if flow["completed_at"]
            else None,
        }

    @rpc
    def cancel_phone_recovery(self, payload):
        """The requester gives up: the flow ends, its secrets are wiped, the
        share link dies, the account is free for a new flow."""
        request = _FLOW.load(payload)
        now = self.clock()
        flow = self._requester_flow(request, lock=True)
        if flow["status"] != domain.CANCELLED:
            domain.require_step("cancel", flow["status"], flow["expires_at"], now)
            self.db.close_flow(flow["id"], domain.CANCELLED, now)
            self.db.audit("anonymous", flow["account_id"], "phone_recovery.cancelled",
                        now, flow=flow["id"])  # fmt: skip
            self.db.commit()
            flow = self.db.flow(flow["id"])
        return self._progress(flow, now)

    # -- step 3: classmates vouch ----------------------------------------------------
    def _shared_flow(self, share_token, now, lock=False):
        flow_id, _ = domain.open_link(self.keys.link_key, "share", share_token, now)
        flow = self.db.flow(str(flow_id), lock=lock)
        if flow is None or not domain_tokens_equal(
            flow["share_token_hash"] or "", self.keys.hash("share", share_token)
        ):
            # A link of a flow that ended (its hash was wiped) or never was.
            if flow is not None and flow["status"] == domain.COMPLETED:
                raise Conflict("recovery_step_invalid", {"status": domain.COMPLETED})
            raise NotFound("share_link_invalid")
        return flow

    @rpc
    def vouch_context(self, payload):
        """What the vouch page shows a classmate: who asks (name, class, the
        new phone masked), the progress, and the warning to read."""
        request = _SHARE.load(payload)
        now = self.clock()
        flow = self._shared_flow(request["share_token"], now)
        requester = self.keys.flow_sealer.open(flow["sealed_requester"])
        new_phone = self.keys.flow_sealer.open(flow["sealed_new_phone"])
        return {
            **self._progress(flow, now),
            "requester_name": requester["name"],
            "requester_class": requester["class_name"],
            "new_phone_masked": mask_phone(new_phone),
            "is_requester": str(flow["account_id"]) == str(request["account_id"]),
            "already_vouched": self.db.has_vouched(
                flow["id"], str(request["account_id"])
            ),
        }

    @rpc
    def vouch(self, payload):
        """A classmate vouches through the share link. Exactly one completion
        however many vouches arrive at once on however many instances: the
        flow row is locked, the state checked again, and only the vouch that
        reaches the needed count while the flow is still awaiting completes
        it."""
        request = _SHARE.load(payload)
        now = self.clock()
        attempts = self.policy.vouch_attempts
        self.throttles.hit(attempts, attempts.key(str(request["account_id"])), now)
        flow = self._shared_flow(request["share_token"], now)
        return self.vouching.vouch(
            flow,
            str(request["account_id"]),
            lambda: self._shared_flow(request["share_token"], now, lock=True),
            now,
        )

    @rpc
    def invite_vouchers(self, payload):
        """The requester names up to 5 classmates by student number: each
        found one gets a vouch request in their inbox (answering yes there is
        a vouch, with every check the share link has). Numbers that match no
        account are silently left out (nothing tells who exists)."""
        request = _INVITE.load(payload)
        now = self.clock()
        flow = self._requester_flow(request)
        domain.require_step("vouch", flow["status"], flow["expires_at"], now)
        found = self.identity.accounts_of_students(
            {
                "school_code": flow["school_code"],
                "student_numbers": request["student_numbers"],
            }  # fmt: skip
        )["accounts"]
        requester = self.keys.flow_sealer.open(flow["sealed_requester"])
        new_phone = self.keys.flow_sealer.open(flow["sealed_new_phone"])
        invited = 0
        for account_id in dict.fromkeys(found.values()):
            if account_id == str(flow["account_id"]):
                continue
            self.mailbox.post(
                account_id,
                "vouch_request",
                flow["id"],
                {
                    "requester_name": requester["name"],
                    "requester_class": requester["class_name"],
                    "new_phone_masked": mask_phone(new_phone),
                },
                True,
                now,
            )
            invited += 1
        self.db.audit("anonymous", flow["account_id"], "phone_recovery.invited", now,
                    flow=flow["id"], count=invited)  # fmt: skip
        self.db.commit()
        return {
            "recovery_id": str(flow["id"]),
            "asked": len(request["student_numbers"]),
        }

    # -- completion: the hand-over to identity and "not me" -----------------------------
    @rpc
    def recovery_handover(self, recovery_id):
        """identity asks for what it applies (the new phone, the password
        hash, the "not me" link), once the flow is completed."""
        flow = self.db.flow(str(recovery_id))
        if flow is None or flow["status"] not in (domain.COMPLETED, domain.REVERTED):
            raise NotFound("recovery_not_found")
        if flow["sealed_new_phone"] is None:
            raise Conflict("recovery_handed_over")
        not_me = domain.sign_link(self.keys.link_key, "not_me", flow["id"],
                                  flow["cancel_until"])  # fmt: skip
        return {
            "recovery_id": str(flow["id"]),
            "account_id": str(flow["account_id"]),
            "new_phone": self.keys.flow_sealer.open(flow["sealed_new_phone"]),
            "password_hash": flow["new_password_hash"],
            "not_me_url": self.policy.url(f"/not-me/{not_me}"),
            "cancel_until": flow["cancel_until"].isoformat(),
        }

    @event_handler("identity", "phone_recovery_applied")
    def on_phone_recovery_applied(self, payload, envelope):
        """identity applied the hand-over: the new phone and password hash
        are no longer needed here."""
        self.db.mark_handed_over(str(payload["recovery_id"]), self.clock())

    @rpc
    def report_not_me(self, payload):
        """The link in the notice to the old phone and the email: within the
        cancel window it takes the account back (identity locks it, ends its
        sessions, restores the old phone) and opens a review."""
        request = _NOT_ME.load(payload)
        now = self.clock()
        flow_id, _ = domain.open_link(
            self.keys.link_key, "not_me", request["token"], now
        )
        flow = self.db.flow(str(flow_id), lock=True)
        if flow is None:
            raise NotFound("share_link_invalid")
        if flow["status"] != domain.REVERTED:
            domain.require_step("not_me", flow["status"], flow["expires_at"], now,
                                flow["cancel_until"])  # fmt: skip
            self.db.set_status(flow["id"], domain.REVERTED, now)
            self.db.add_event(
                "phone_recovery_reverted",
                {"recovery_id": str(flow["id"]), "account_id": str(flow["account_id"])},
            )
            self.db.insert_review(
                id=str(uuid.uuid4()),
                kind="recovery_dispute",
                account_id=str(flow["account_id"]),
                sealed_photo=None,
                width=None,
                height=None,
                ref_id=str(flow["id"]),
                now=now,
            )
            self.db.audit("anonymous", flow["account_id"], "phone_recovery.disputed",
                        now, flow=flow["id"])  # fmt: skip
            self.db.commit()
        return {"recovery_id": str(flow["id"]), "status": domain.REVERTED}

    @timer(interval=HOUSEKEEPING_SECONDS)
    def expire_flows(self):
        """Flows past their deadline end and free everything they held."""
        expired = self.db.expire_due(self.clock())
        self.db.commit()
        if expired:
            log.info("expired %s phone recoveries", len(expired))


def domain_tokens_equal(stored, computed):
    """Constant-time comparison of two keyed hashes."""
    return hmac.compare_digest(str(stored), str(computed))
