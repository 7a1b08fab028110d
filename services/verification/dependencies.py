"""Dependency providers of the verification service: policies and keys from
config, and the delivery queue that sends sealed messages through the
providers with retries."""

import base64
import logging
from datetime import timedelta

import eventlet
from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider
from prometheus_client import Counter

from services.common.plumbing.clock import utc_now
from services.common.plumbing.crypto import Sealer
from services.common.plumbing.poller import Poller
from services.common.plumbing.providers import sibling
from services.common.rules.contacts import channel_of
from services.common.rules.masking import mask_email, mask_phone
from services.verification import domain
from services.verification.providers import ProviderRefused, build_providers
from services.verification.store import VerificationStore

__all__ = ["Policies", "Keys", "DeliveryQueue", "mask_destination"]

log = logging.getLogger(__name__)

# What each delivery attempt came to: sent (the provider took it), retried
# (a transient refusal, tried again later) or failed (given up: the code
# is killed and its send refunded). Alerted on in deploy/prometheus.
DELIVERY_ATTEMPTS = Counter(
    "code_delivery_attempts_total",
    "Code and notice delivery attempts by channel and what came of them",
    ["channel", "outcome"],
)


def mask_destination(destination):
    if channel_of(destination) == "email":
        return mask_email(destination)
    return mask_phone(destination)


class PolicySet:
    def __init__(self, default, per_purpose):
        self.default = default
        self.per_purpose = per_purpose

    def for_purpose(self, purpose):
        return self.per_purpose.get(purpose, self.default)


class Policies(DependencyProvider):
    """``VERIFICATION_PROFILE`` (default/chsi/strict), per-purpose profiles in
    ``VERIFICATION_PURPOSE_PROFILES`` and numeric ``VERIFICATION_LIMITS``."""

    def setup(self):
        config = self.container.config
        limits = config.get("VERIFICATION_LIMITS") or {}
        default = domain.policy_for(
            config.get("VERIFICATION_PROFILE", "default"), limits
        )
        per_purpose = {
            purpose: domain.policy_for(profile, limits)
            for purpose, profile in (
                config.get("VERIFICATION_PURPOSE_PROFILES") or {}
            ).items()
        }
        self.policies = PolicySet(default, per_purpose)

    def get_dependency(self, worker_ctx):
        return self.policies


class KeySet:
    def __init__(self, code_key, seal_key):
        self.code_key = code_key
        self.sealer = Sealer(seal_key, b"delivery")


class Keys(DependencyProvider):
    """``CODE_HMAC_KEY`` and ``MESSAGE_SEAL_KEY`` (base64, 32 bytes each)."""

    def setup(self):
        config = self.container.config
        self.keys = KeySet(
            base64.b64decode(config["CODE_HMAC_KEY"]),
            base64.b64decode(config["MESSAGE_SEAL_KEY"]),
        )

    def get_dependency(self, worker_ctx):
        return self.keys


class DeliveryQueue(DependencyProvider):
    """Sends queued messages: woken after each issue, and polls for retries.

    A delivery is leased (``lease_until``) so several instances share the
    queue; each attempt is recorded. After ``DELIVERY_MAX_ATTEMPTS`` failures
    (or one permanent refusal) the code dies, the quota is refunded and
    ``code_delivery_failed`` is published.
    """

    def setup(self):
        config = self.container.config
        self.providers = build_providers(config)
        self.sealer = Sealer(base64.b64decode(config["MESSAGE_SEAL_KEY"]), b"delivery")
        self.max_attempts = int(config.get("DELIVERY_MAX_ATTEMPTS", 4))
        self.retry_base = float(config.get("DELIVERY_RETRY_BASE_SECONDS", 2))
        self.lease = timedelta(seconds=float(config.get("DELIVERY_LEASE_SECONDS", 60)))
        self.pool = GreenPool(int(config.get("DELIVERY_CONCURRENCY", 10)))
        self.poller = Poller(
            "delivery queue",
            self.drain,
            float(config.get("DELIVERY_POLL_SECONDS", 0.5)),
        )
        self.clock = utc_now

    def start(self):
        database = sibling(self, "db")
        self.db_pool = database.pool
        self.on_commit = database.on_commit  # the outbox relay's wake, if any
        self.poller.start()

    def stop(self):
        self.poller.stop()
        self.pool.waitall()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.poller  # entrypoints call .wake() after committing a code

    def _store(self):
        return VerificationStore(self.db_pool, on_commit=self.on_commit)

    def drain(self):
        while True:
            store = self._store()
            try:
                now = self.clock()
                store.relax_durability()  # a lost lease only delays a retry
                claimed = store.claim_deliveries(now, now + self.lease, batch=20)
                store.commit()
            finally:
                store.close()
            for delivery in claimed:
                self.pool.spawn_n(self._deliver, delivery)
            if len(claimed) < 20:
                break
        self.pool.waitall()

    def _deliver(self, delivery):
        provider = self.providers[delivery["channel"]]
        outcome, detail, permanent = "sent", None, False
        try:
            message = self.sealer.open(delivery["sealed_message"])
            provider.send(message)
        except ProviderRefused as refusal:
            outcome, detail, permanent = "refused", refusal.detail, refusal.permanent
        except Exception as exc:  # a bug or an unexpected provider answer
            outcome, detail = "error", type(exc).__name__
        store = self._store()
        try:
            now = self.clock()
            if outcome == "sent":  # the hot path: one statement
                store.record_sent(delivery["id"], provider.name, now)
                final = "sent"
            else:
                final = self._record_failure(
                    store, delivery, provider.name, now, outcome, detail, permanent
                )
                store.commit()
        finally:
            store.close()
        DELIVERY_ATTEMPTS.labels(delivery["channel"], final).inc()
        if outcome != "sent":
            log.warning(
                "delivery %s to %s attempt %s: %s %s",
                delivery["id"],
                mask_destination(delivery["destination"]),
                delivery["attempts"],
                outcome,
                detail,
            )

    def _record_failure(
        self, store, delivery, provider_name, now, outcome, detail, permanent
    ):
        """The attempt recorded, then the delivery retried later or given up;
        returns which, for the metric."""
        store.record_attempt(delivery["id"], now, provider_name, outcome, detail)
        if permanent or delivery["attempts"] >= self.max_attempts:
            self._give_up(store, delivery, now, detail)
            return "failed"
        backoff = self.retry_base * 2 ** (delivery["attempts"] - 1)
        store.retry_delivery(delivery["id"], now + timedelta(seconds=backoff), detail)
        eventlet.spawn_after(backoff, self.poller.wake)
        return "retried"

    def _give_up(self, store, delivery, now, detail):
        if not store.fail_delivery(delivery["id"], now, detail):
            return
        if delivery["code_id"] is None:  # a notice: nothing to refund
            return
        code = store.code_for_refund(delivery["code_id"])
        store.kill_code(delivery["code_id"], now)
        # The user did not get the code: the send does not count.
        store.refund_destination(
            code["destination"], domain.quota_budget(code["purpose"]), code["quota_day"]
        )
        if code["account_id"]:
            store.refund_counter(
                "account_day",
                code["account_id"],
                domain.beijing_day_start(code["issued_at"]),
            )
        store.add_event(
            "code_delivery_failed",
            {
                "delivery_id": delivery["id"],
                "channel": delivery["channel"],
                "purpose": code["purpose"],
                "account_id": code["account_id"],
                "destination_masked": mask_destination(code["destination"]),
                "attempts": delivery["attempts"],
                "reason": detail,
            },
        )
