"""Codes and captchas: issue a code under the quota ledger
(``quota.py``), use one (single use, wrong guesses counted and locked out),
and the image captchas a burst of refusals from one address requires.
States: ``code_lifecycle.mermaid``. Mixed into ``VerificationService``;
needs ``db``, ``clock``, ``config``, ``policies``, ``keys`` and ``delivery``."""

import base64
import logging
import uuid
from datetime import timedelta

import requests
from eventlet import tpool

from services.common.contract.errors import (
    Forbidden,
    RuleViolation,
    ServiceError,
    Throttled,
)
from services.common.plumbing.db import is_conflict
from services.common.plumbing.rpc import rpc
from services.common.plumbing.timers import timer
from services.common.rules.contacts import channel_of
from services.common.rules.throttles import address_key
from services.verification import domain, quota
from services.verification.dependencies import (
    mask_destination,
)
from services.verification.schemas import (
    CaptchaAnswer,
    CheckCodeAnswer,
    CheckCodeRequest,
    IssueCodeAnswer,
    IssueCodeRequest,
    SendNoticeRequest,
    VerifyCaptchaRequest,
)

__all__ = ["CodeEntrypoints"]

log = logging.getLogger(__name__)

# Schemas hold no per-call state: built once, not per request.
_ISSUE_CODE_REQUEST = IssueCodeRequest()
_ISSUE_CODE_ANSWER = IssueCodeAnswer()
_CHECK_CODE_REQUEST = CheckCodeRequest()
_CHECK_CODE_ANSWER = CheckCodeAnswer()
_CAPTCHA_ANSWER = CaptchaAnswer()
_VERIFY_CAPTCHA_REQUEST = VerifyCaptchaRequest()
_SEND_NOTICE_REQUEST = SendNoticeRequest()

CAPTCHA_TTL = timedelta(minutes=5)


def _render_captcha(text):
    from captcha.image import ImageCaptcha

    return ImageCaptcha(width=160, height=60).generate(text, format="png").getvalue()


def _counted_address(request):
    """The client a per-address limit counts (IPv6 by its /64), or None."""
    return address_key(request["client_ip"]) if request["client_ip"] else None


class CodeEntrypoints:
    # -- codes -----------------------------------------------------------
    @rpc
    def issue_code(self, payload):
        """Reserve quota, store a hashed code and queue its message, atomically.
        The quota taken and its order are ``quota.plan_send``'s."""
        request = _ISSUE_CODE_REQUEST.load(payload)
        now = self.clock()
        policy = self.policies.for_purpose(request["purpose"])
        destination = domain.checked_destination(
            request["channel"], request["destination"]
        )
        self._require_captcha_if_needed(request, now, policy)
        prefix = domain.phone_prefix(destination)
        address = _counted_address(request)
        plan = quota.plan_send(request["purpose"], destination,
                               request["account_id"], address, prefix, now, policy)  # fmt: skip
        refusal = quota.suspended_refusal(self.db.breaker_open_until(prefix), now)
        if refusal is not None:
            self.db.rollback()
            raise refusal
        # The per-IP and per-prefix rows are shared by many requests (one NAT,
        # one mobile network): taken by a statement of their own, so their row
        # locks are not held through the code's transaction.
        shared = self.db.take_shared(plan)
        if shared.refused is not None:
            if shared.refused.scope == "prefix_minute":
                self._trip_breaker(prefix, now, policy)
            self._count_ip_failure(address, now, policy)
            raise quota.shared_refusal(shared.refused, now, policy)
        try:
            answer = self._issue(request, plan, policy, now)
        except ServiceError as refusal:
            self.db.rollback()
            self.db.give_back(plan.shared)
            self._count_ip_failure(address, now, policy)
            log.info(
                "code refused for %s: %s", mask_destination(destination), refusal.code
            )
            raise
        except Exception as exc:
            if is_conflict(exc):  # @rpc replays the whole call: give back first
                self.db.rollback()
                self.db.give_back(plan.shared)
            raise
        self.db.commit()
        self.delivery.wake()
        return _ISSUE_CODE_ANSWER.dump(answer)

    def _issue(self, request, plan, policy, now):
        sent_today, refused = self.db.take_send_quota(plan, now)
        if refused is not None:
            raise quota.send_refusal(*refused, now, policy)
        destination = plan.destination
        code = domain.generate_code()
        expires_at = now + policy.validity
        code_id = self.db.insert_code(
            channel=request["channel"],
            destination=destination,
            purpose=request["purpose"],
            code_hash=domain.code_hash(
                self.keys.code_key, destination, request["purpose"], code
            ),
            account_id=request["account_id"],
            client_ip=request["client_ip"],
            quota_day=domain.beijing_day(now),
            issued_at=now,
            expires_at=expires_at,
        )
        subject, body = domain.render_message(
            request["channel"], request["purpose"], code, policy.validity
        )
        self.db.insert_delivery(
            code_id,
            request["channel"],
            destination,
            self.keys.sealer.seal(
                {"to": destination, "code": code, "subject": subject, "body": body}
            ),
            now,
        )
        self.db.add_event(
            "code_issued",
            {
                "code_id": code_id,
                "channel": request["channel"],
                "purpose": request["purpose"],
                "account_id": request["account_id"],
                "destination_masked": mask_destination(destination),
                "expires_at": expires_at.isoformat(),
            },
        )
        return {
            "expires_at": expires_at,
            "resend_after": int(policy.resend_cooldown.total_seconds()),
            "remaining_today": policy.daily_limit_per_destination - sent_today,
            "destination_masked": mask_destination(destination),
        }

    def _trip_breaker(self, prefix, now, policy):
        """Sends to ``prefix`` stop for ``breaker_open_for``."""
        self.db.trip_breaker(prefix, now + policy.breaker_open_for, now)
        self.db.commit()
        # An alert for the on-call: someone may be pumping SMS to premium numbers.
        log.error(
            "ALERT sms-pumping breaker tripped for prefix %s: more than %s sends "
            "a minute; sending suspended until %s",
            prefix,
            policy.prefix_sends_per_minute,
            now + policy.breaker_open_for,
        )

    def _count_ip_failure(self, client_ip, now, policy):
        """One more refusal from this address (shared row: its own statement,
        committing the worker's open transaction first)."""
        if client_ip:
            self.db.bump_shared_counter(
                "ip_fail_hour", client_ip, domain.window_start(now, quota.HOUR), 10**9
            )

    def _require_captcha_if_needed(self, request, now, policy):
        address = _counted_address(request)
        if not address:
            return
        failures = self.db.counter_value(
            "ip_fail_hour", address, domain.window_start(now, quota.HOUR)
        )
        if not domain.captcha_required(failures, policy):
            return
        if not request["captcha_id"]:
            raise Forbidden("captcha_required")
        self._consume_captcha(request["captcha_id"], request["captcha_answer"], now)

    @rpc
    def check_code(self, payload):
        """Use a code: any live one for destination + purpose; single use."""
        request = _CHECK_CODE_REQUEST.load(payload)
        now = self.clock()
        policy = self.policies.for_purpose(request["purpose"])
        channel = request["channel"] or channel_of(request["destination"])
        destination = domain.normalise_destination(channel, request["destination"])
        purpose = request["purpose"]
        refusal = domain.lock_refusal(self.db.guess_counter(destination, purpose), now)
        if refusal is not None:
            raise refusal
        # Count the attempt first, in its own transaction, so parallel guesses
        # all count (Kratos' rule).
        attempt = self.db.count_attempt(
            destination, purpose, now, stale_before=now - policy.validity
        )
        self.db.commit()
        if attempt["attempts"] > policy.max_wrong_guesses:
            self._lock_out(destination, purpose, attempt, now, policy)
        hashed = domain.code_hash(
            self.keys.code_key, destination, purpose, request["code"]
        )
        candidates = self.db.candidate_codes(
            destination, purpose, since=now - policy.validity - timedelta(days=1)
        )
        match = next(
            (c for c in candidates if domain.codes_match(c["code_hash"], hashed)), None
        )
        refusal = domain.judge_code(match, now)
        if refusal is None and not self.db.consume_code(match["id"], now):
            refusal = "code_used"  # a concurrent check won
        if refusal is not None:
            self._count_ip_failure(_counted_address(request), now, policy)
            outcome = domain.after_wrong_guess(
                attempt["attempts"], self._lockouts_today(attempt, now), policy, now
            )
            if outcome.kill_codes:
                self._lock_out(destination, purpose, attempt, now, policy)
            self.db.commit()
            raise RuleViolation(refusal)
        self.db.reset_attempts(destination, purpose, now)
        self.db.add_event(
            "code_verified",
            {
                "purpose": purpose,
                "account_id": match["account_id"],
                "destination_masked": mask_destination(destination),
            },
        )
        self.db.commit()
        return _CHECK_CODE_ANSWER.dump(
            {
                "verified": True,
                "destination": destination,
                "purpose": purpose,
                "account_id": match["account_id"],
            }
        )

    @staticmethod
    def _lockouts_today(attempt, now):
        if attempt["lockout_day"] == domain.beijing_day(now):
            return attempt["lockouts"]
        return 0

    def _lock_out(self, destination, purpose, attempt, now, policy):
        outcome = domain.after_wrong_guess(
            policy.max_wrong_guesses, self._lockouts_today(attempt, now), policy, now
        )
        self.db.kill_live_codes(destination, purpose, now)
        self.db.record_lockout(
            destination, purpose, domain.beijing_day(now), outcome.lock_until, now
        )
        self.db.commit()
        extra = {}
        if outcome.lock_until:
            extra["retry_after"] = domain.seconds_until(outcome.lock_until - now)
        raise Throttled("too_many_attempts", extra)

    # -- captchas ----------------------------------------------------------
    @rpc
    def issue_captcha(self):
        """A new image captcha: ``{captcha_id, image_png_base64, expires_at}``."""
        now = self.clock()
        captcha_id = str(uuid.uuid4())
        text = domain.generate_captcha_text()
        png = tpool.execute(_render_captcha, text)  # CPU-bound: keep workers free
        expires_at = now + CAPTCHA_TTL
        self.db.insert_captcha(
            captcha_id,
            domain.captcha_hash(self.keys.code_key, captcha_id, text),
            expires_at,
        )
        self.db.commit()
        capture_url = self.config.get("CAPTCHA_CAPTURE_URL")
        if capture_url:  # development capture only (see config.yml)
            requests.post(capture_url, json={"to": captcha_id, "body": text}, timeout=2)
        return _CAPTCHA_ANSWER.dump(
            {
                "captcha_id": captcha_id,
                "expires_at": expires_at,
                "image_png_base64": base64.b64encode(png).decode(),
            }
        )

    @rpc
    def verify_captcha(self, payload):
        """Use a captcha (single use, right or wrong); refuses ``captcha_invalid``."""
        request = _VERIFY_CAPTCHA_REQUEST.load(payload)
        self._consume_captcha(request["captcha_id"], request["answer"], self.clock())
        return {"valid": True}

    def _consume_captcha(self, captcha_id, answer, now):
        stored = self.db.consume_captcha(str(captcha_id), now)
        self.db.commit()  # used up even when the answer is wrong: no retries on one image
        expected = domain.captcha_hash(
            self.keys.code_key, str(captcha_id), answer or ""
        )
        if stored is None or not domain.codes_match(stored, expected):
            raise RuleViolation("captcha_invalid")

    # -- housekeeping --------------------------------------------------------
    @timer(interval=3600)
    def purge_expired(self):
        """Hourly: captchas and quota windows older than two days; codes and
        delivered notices older than ``RETENTION_DAYS`` (default 30)."""
        now = self.clock()
        self.db.purge(now - timedelta(days=2))
        retention = timedelta(days=float(self.config.get("RETENTION_DAYS") or 30))
        codes, deliveries = self.db.purge_retained(now - retention)
        self.db.commit()
        if codes or deliveries:
            log.info(
                "purged %s codes and %s deliveries past retention", codes, deliveries
            )
