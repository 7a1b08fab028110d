"""Dependency providers of the verification service: policies and keys from
config, and the delivery queue that sends sealed messages through the
providers with retries."""

import base64
import logging
from datetime import timedelta

import eventlet
from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge

from services.common.plumbing.clock import utc_now
from services.common.plumbing.crypto import Sealer
from services.common.plumbing.group_commit import GroupCommit
from services.common.plumbing.poller import Poller
from services.common.plumbing.providers import sibling
from services.common.rules.contacts import channel_of
from services.common.rules.masking import mask_email, mask_phone
from services.verification import domain, pumping, receipts
from services.verification.providers import ProviderRefused, build_providers
from services.verification.store import VerificationStore

__all__ = [
    "Policies",
    "Keys",
    "DeliveryQueue",
    "mask_destination",
    "give_back_send",
    "DELIVERY_RECEIPTS",
    "PumpingWatch",
    "SMS_SUSPENSIONS",
]

log = logging.getLogger(__name__)

# What each delivery attempt came to: sent (the provider took it), retried
# (a transient refusal, tried again later) or failed (given up: the code
# is killed and its send refunded). Alerted on in deploy/prometheus.
DELIVERY_ATTEMPTS = Counter(
    "code_delivery_attempts_total",
    "Code and notice delivery attempts by channel and what came of them",
    ["channel", "outcome"],
)

# What the receipts said, by provider and state (submitted is not counted:
# it is the provider's answer, in DELIVERY_ATTEMPTS).
DELIVERY_RECEIPTS = Counter(
    "code_delivery_receipts_total",
    "Delivery receipts that moved a delivery, by provider and state",
    ["provider", "state"],
)

# One per suspension the watcher decides (alerted on in deploy/prometheus),
# and how many are in force as this instance last read them.
SMS_SUSPENSIONS = Counter(
    "sms_suspensions_total",
    "SMS sending suspended for a number segment or client network (pumping)",
    ["scope"],
)
SMS_SUSPENSIONS_ACTIVE = Gauge(
    "sms_suspensions_active",
    "Number segments and client networks whose SMS sending is suspended",
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
        self.receipt_key = base64.b64decode(config["CODE_HMAC_KEY"])
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
        # Deliveries the provider took are recorded together: under load,
        # one statement for every answer that came while the last was written.
        self.sent = GroupCommit(self._record_sent)

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

    def _record_sent(self, sent):
        store = self._store()
        try:
            store.record_sent_many(sent)
        finally:
            store.close()

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
        receipt = None
        if provider.receipts:
            receipt = (
                delivery["id"],
                receipts.receipt_signature(self.receipt_key, delivery["id"]),
            )
        try:
            message = self.sealer.open(delivery["sealed_message"])
            provider.send(message, receipt=receipt)
        except ProviderRefused as refusal:
            outcome, detail, permanent = "refused", refusal.detail, refusal.permanent
        except Exception as exc:  # a bug or an unexpected provider answer
            outcome, detail = "error", type(exc).__name__
        now = self.clock()
        if outcome == "sent":  # the hot path: one statement for many
            self.sent.add((delivery["id"], provider.name, now, provider.receipts))
            final = "sent"
        else:
            store = self._store()
            try:
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
        if store.fail_delivery(delivery["id"], now, detail):
            give_back_send(store, delivery, now, detail)


def give_back_send(store, delivery, now, reason):
    """The message never reached the person (given up on, or a receipt
    said failed/expired): its code dies, its send no longer counts against
    the destination's day and cooldown or the account's day, and
    ``code_delivery_failed`` goes out. In the caller's transaction."""
    if delivery["code_id"] is None:  # a notice: nothing to refund
        return
    code = store.code_for_refund(delivery["code_id"])
    if code is None or code["used_at"] is not None:
        return  # purged, or it was used: it did reach someone
    store.kill_code(delivery["code_id"], now)
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
            "reason": reason,
        },
    )


class SuspensionGate:
    """What a send asks: is its segment or network suspended, until when?
    Answered from memory (the watcher's last read, every ``check``): a send
    pays no database round trip for it. A suspension reaches the other
    instances within one check."""

    def __init__(self, settings):
        self.settings = settings
        self.active = {}  # (scope, key) -> until

    def suspended_until(self, destination, network, now):
        """``network``: ``pumping.network_of`` the client's address, or None."""
        keys = [("segment", pumping.segment_of(destination))]
        if network is not None:
            keys.append(("network", network))
        ends = [self.active.get(key) for key in keys]
        ends = [until for until in ends if until is not None and until > now]
        return max(ends) if ends else None

    def forget(self, scope, key):
        """Lifted here: this instance sends again at once, the others after
        their next read."""
        self.active.pop((scope, key), None)

    def replace(self, rows):
        self.active = {(row["scope"], row["key"]): row["until"] for row in rows}
        SMS_SUSPENSIONS_ACTIVE.set(len(self.active))


class PumpingWatch(DependencyProvider):
    """Judges SMS pumping (``pumping.py``) every ``PUMPING_CHECK_SECONDS``:
    one instance at a time (an advisory lock) tallies the recent SMS codes
    by segment and network and suspends the ones pumping; every instance
    reads the suspensions in force into its ``SuspensionGate``."""

    def setup(self):
        config = self.container.config
        self.settings = pumping.settings_from(config)
        self.gate = SuspensionGate(self.settings)
        self.poller = Poller(
            "sms pumping watch",
            self.check,
            float(config.get("PUMPING_CHECK_SECONDS", 5)),
        )
        self.clock = utc_now

    def start(self):
        database = sibling(self, "db")
        self.db_pool = database.pool
        self.poller.start()

    def stop(self):
        self.poller.stop()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.gate

    def check(self):
        store = VerificationStore(self.db_pool)
        try:
            now = self.clock()
            if store.try_watch_lock():
                self._judge(store, now)
            active = store.suspensions(now)
            store.commit()
        finally:
            store.close()
        self.gate.replace([row for row in active if row["lifted_at"] is None])

    def _judge(self, store, now):
        settings = self.settings
        since, until = pumping.judged_window(now, settings)
        history = {
            (row["scope"], row["key"]): row
            for row in store.suspension_history(now - settings.repeat_memory)
        }
        ended = {key: row["until"] for key, row in history.items()}
        # Counted in SQL, one row per busy key; only what SQL cannot key
        # (another country's segment, codes older than their stored network)
        # is read code by code.
        figures = pumping.merge_counted(
            store.window_tally(since, until, ended, settings.min_volume),
            pumping.tally(store.window_unkeyed(since, until), ended),
        )
        # Only keys with the volume and the low share are worth a baseline.
        suspects = {
            key: counted
            for key, counted in figures.items()
            if pumping.is_pumping(counted, 0.0, settings)
        }
        if not suspects:
            return
        baseline_since = now - settings.baseline_period
        by_network = {}
        suspect_networks = [key for scope, key in suspects if scope == "network"]
        if suspect_networks:
            for row in store.network_sends(suspect_networks, baseline_since, since):
                net = row["client_network"] or pumping.network_of(row["client_ip"])
                by_network[net] = by_network.get(net, 0) + row["sends"]
        for (scope, key), counted in suspects.items():
            if scope == "segment":
                before = store.segment_sends(key, baseline_since, since)
            else:
                before = by_network.get(key, 0)
            verdict = pumping.judge(
                scope,
                key,
                counted,
                pumping.baseline_per_window(before, settings),
                history.get((scope, key)),
                now,
                settings,
            )
            if verdict is not None:
                self._suspend(store, verdict, now)

    @staticmethod
    def _suspend(store, verdict, now):
        until = now + verdict.suspend_for
        figures = {
            "sent": verdict.figures.sent,
            "delivered": verdict.figures.delivered,
            "verified": verdict.figures.verified,
            "verified_share": round(verdict.figures.verified_share, 3),
            "baseline_per_window": round(verdict.baseline, 2),
            **verdict.reasons,
        }
        if store.suspend(
            verdict.scope, verdict.key, verdict.level, now, until, figures
        ):
            SMS_SUSPENSIONS.labels(verdict.scope).inc()
            # For the on-call: someone is likely pumping SMS (toll fraud).
            log.error(
                "ALERT sms sending suspended for %s %s until %s (level %s): "
                "%s sent, %s delivered, %s verified in the window",
                verdict.scope,
                verdict.key,
                until.isoformat(),
                verdict.level,
                verdict.figures.sent,
                verdict.figures.delivered,
                verdict.figures.verified,
            )
