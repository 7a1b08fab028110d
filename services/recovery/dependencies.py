"""Dependency providers of the recovery service: its keys, its policy (every
setting, read once), the inbox, vouching (shared by the share link and the
inbox), and the answer floor the first recovery steps wait out."""

import base64
import logging
import os
import time
import uuid
from datetime import datetime

import eventlet
from nameko.extensions import DependencyProvider

from services.common.plumbing.crypto import Sealer, keyed_hash
from services.common.plumbing.providers import sibling
from services.recovery import domain

__all__ = [
    "HOUSEKEEPING_SECONDS",
    "AnswerFloor",
    "Inbox",
    "Policies",
    "RecoveryKeys",
    "Vouching",
]

log = logging.getLogger(__name__)

# How often the timer work runs (the e2e tier shortens it to see a dispute
# window end without waiting a minute).
HOUSEKEEPING_SECONDS = float(os.environ.get("RECOVERY_HOUSEKEEPING_SECONDS", 60))


class _Keys:
    def __init__(self, hash_key, link_key, seal_key):
        self._hash_key = hash_key
        self.link_key = link_key
        # Bound to their use: a sealed phone cannot be opened as a photo.
        self.flow_sealer = Sealer(seal_key, b"recovery_flow")
        self.photo_sealer = Sealer(seal_key, b"recovery_photo")
        self.inbox_sealer = Sealer(seal_key, b"recovery_inbox")

    def hash(self, *parts):
        """Keyed hash: requester and share tokens, old phones, throttle keys,
        decoy derivation. Never the plaintext."""
        return keyed_hash(self._hash_key, *parts)

    def digest(self, *parts):
        return bytes.fromhex(self.hash(*parts))


class RecoveryKeys(DependencyProvider):
    """``RECOVERY_HASH_KEY`` (HMAC), ``RECOVERY_LINK_KEY`` (signs share and
    "not me" links), ``RECOVERY_SEAL_KEY`` (AES-GCM): base64, 32 bytes each."""

    def setup(self):
        config = self.container.config
        keys = []
        for name in ("RECOVERY_HASH_KEY", "RECOVERY_LINK_KEY", "RECOVERY_SEAL_KEY"):
            key = base64.b64decode(config[name])
            if len(key) != 32:
                raise ValueError(f"{name} must be 32 bytes (base64)")
            keys.append(key)
        self.keys = _Keys(*keys)

    def get_dependency(self, worker_ctx):
        return self.keys


class Policies(DependencyProvider):
    """``self.policy``: the service's ``domain.RecoveryPolicy``, read once
    from its config (``domain.policy_from``)."""

    def setup(self):
        self.policy = domain.policy_from(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.policy


class AnswerFloor:
    """Hold an answer until ``floor`` seconds after the request arrived, so
    the work behind it (a match or not, a code sent or not) does not show in
    the time it takes."""

    def __init__(self, floor_seconds):
        self.deadline = time.monotonic() + floor_seconds

    def wait(self):
        left = self.deadline - time.monotonic()
        if left > 0:
            eventlet.sleep(left)


class _Inbox:
    def __init__(self, store_of, sealer):
        self._store_of = store_of
        self._sealer = sealer

    def post(self, account_id, kind, ref_id, params, needs_answer, now):
        """A message in the account's inbox (its parameters sealed), in the
        caller's transaction."""
        self._store_of().insert_message(
            id=str(uuid.uuid4()),
            account_id=str(account_id),
            kind=kind,
            ref_id=str(ref_id) if ref_id else None,
            sealed_params=self._sealer.seal(params),
            needs_answer=needs_answer,
            now=now,
        )


class Inbox(DependencyProvider):
    """``self.mailbox.post(...)``: the in-app inbox every area writes to (flow
    outcomes, vouch requests, duplicate-ID moves, correction answers), on
    the worker's store with the inbox key."""

    def setup(self):
        self.database = sibling(self, "db")
        self.keys = sibling(self, "keys")

    def get_dependency(self, worker_ctx):
        stores = self.database.stores
        return _Inbox(lambda: stores[worker_ctx], self.keys.keys.inbox_sealer)


class _Vouching:
    def __init__(self, store_of, identity, registry_sync, policy, mailbox):
        self._store = store_of
        self._identity = identity
        self._registry_sync = registry_sync
        self._policy = policy
        self._mailbox = mailbox

    def vouch(self, flow, voucher_id, lock_flow, now, with_vouch=None):
        """One vouch for ``flow`` by ``voucher_id``, every guard applied.
        ``lock_flow`` re-reads the flow locked; ``with_vouch``: more work
        for the vouch's own transaction (an inbox answer)."""
        db = self._store()
        domain.require_step("vouch", flow["status"], flow["expires_at"], now)
        policy = self._policy
        requester_id = str(flow["account_id"])
        if voucher_id == requester_id:
            domain.require_voucher_allowed("self")
        brief = self._identity.account_brief(voucher_id)
        mates = self._registry_sync.classmates(
            {"account_id": requester_id, "other_account_id": voucher_id}
        )
        if mates.get("verified_since"):
            mates["verified_since"] = datetime.fromisoformat(mates["verified_since"])
        facts = domain.VoucherFacts(
            requester_id=requester_id,
            voucher_id=voucher_id,
            voucher_status=brief["status"],
            voucher_created_at=datetime.fromisoformat(brief["created_at"]),
            classmates=mates,
            already_vouched=db.has_vouched(flow["id"], voucher_id),
        )
        domain.require_voucher_allowed(domain.voucher_refusal(facts, now, policy))
        db.rollback()

        flow = lock_flow()
        domain.require_step("vouch", flow["status"], flow["expires_at"], now)
        day = now.astimezone(domain.BEIJING).date().isoformat()
        if not db.bump_counter(f"vouch-day:{voucher_id}", day,
                                    policy.vouch_daily_cap):  # fmt: skip
            domain.require_voucher_allowed("daily_cap")
        term = domain.term_period(now, mates.get("term"))
        if not db.bump_counter(f"vouch-term:{voucher_id}", term,
                                    policy.vouch_term_cap):  # fmt: skip
            domain.require_voucher_allowed("term_cap")
        if not db.add_vouch(flow["id"], voucher_id, now):
            domain.require_voucher_allowed("already_vouched")
        vouches = flow["vouches"] + 1
        status = domain.after_vouch(vouches, policy)
        db.audit(f"account:{voucher_id}", requester_id, "phone_recovery.vouched",
                    now, flow=flow["id"])  # fmt: skip
        if status == domain.COMPLETED:
            db.complete_flow(flow["id"], now + policy.cancel_window, now)
            db.add_event(
                "phone_recovery_completed",
                {"recovery_id": str(flow["id"]), "account_id": requester_id},
            )
            # Waiting for the requester when they are back in.
            self._mailbox.post(requester_id, "phone_recovery_outcome", flow["id"],
                          {"status": domain.COMPLETED}, False, now)  # fmt: skip
            db.audit("recovery", requester_id, "phone_recovery.completed", now,
                        flow=flow["id"])  # fmt: skip
            log.info("phone recovery %s completed", flow["id"])
        if with_vouch is not None:
            with_vouch()
        db.commit()
        return {
            "recovery_id": str(flow["id"]),
            "vouches": vouches,
            "vouches_needed": flow["vouches_needed"],
            "status": status,
        }


class Vouching(DependencyProvider):
    """``self.vouching.vouch(...)``: a classmate's vouch, whether it comes
    through the share link or as a yes in the inbox. Exactly one completion
    however many vouches arrive at once on however many instances."""

    def setup(self):
        self.database = sibling(self, "db")
        self.identity = sibling(self, "identity")
        self.registry_sync = sibling(self, "registry_sync")
        self.policies = sibling(self, "policy")
        self.mailbox = sibling(self, "mailbox")

    def get_dependency(self, worker_ctx):
        stores = self.database.stores
        return _Vouching(
            lambda: stores[worker_ctx],
            self.identity.get_dependency(worker_ctx),
            self.registry_sync.get_dependency(worker_ctx),
            self.policies.policy,
            self.mailbox.get_dependency(worker_ctx),
        )
