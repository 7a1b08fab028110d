"""Codes and captchas: issue a code under the quota ledger
(``quota.py``), use one (single use, wrong guesses counted and locked out),
and the image captchas a burst of refusals from one address requires.
States: ``code_lifecycle.mermaid``. Mixed into ``VerificationService``;
needs ``db``, ``clock``, ``config``, ``policies``, ``keys``, ``delivery`` and
``pumping``."""

import base64
import logging
import uuid
from datetime import timedelta

import requests
from eventlet import tpool

from services.common.contract.errors import (
    RuleViolation,
    Throttled,
)
from services.common.plumbing.rpc import rpc
from services.common.plumbing.timers import timer
from services.common.rules.contacts import channel_of
from services.common.rules.throttles import address_key
from services.verification import domain, pumping, quota, receipts
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
        """Take the quota ``quota.plan_send`` plans, store a hashed code and
        queue its message and event: one call to the database, atomic."""
        request = _ISSUE_CODE_REQUEST.load(payload)
        now = self.clock()
        policy = self.policies.for_purpose(request["purpose"])
        channel, purpose = request["channel"], request["purpose"]
        destination = domain.checked_destination(channel, request["destination"])
        network = None
        if channel == "sms":  # the watch counts SMS codes by client network
            network = pumping.network_of(request["client_ip"])
            self._refuse_pumped(destination, network, request, now, policy)
        prefix = domain.phone_prefix(destination)
        address = _counted_address(request)
        plan = quota.plan_send(purpose, destination, request["account_id"],
                               address, prefix, now, policy)  # fmt: skip
        code = domain.generate_code()
        expires_at = now + policy.validity
        subject, body = domain.render_message(channel, purpose, code, policy.validity)
        masked = mask_destination(destination)
        new_code = {
            "channel": channel,
            "purpose": purpose,
            "code_hash": domain.code_hash(
                self.keys.code_key, destination, purpose, code
            ),
            "client_ip": request["client_ip"],
            "client_network": network,
            "issued_at": now,
            "expires_at": expires_at,
            "sealed_message": self.keys.sealer.seal(
                {"to": destination, "code": code, "subject": subject, "body": body}
            ),
        }
        event = {
            "channel": channel,
            "purpose": purpose,
            "account_id": request["account_id"],
            "destination_masked": masked,
            "expires_at": expires_at.isoformat(),
        }
        outcome = self.db.issue_code(plan, new_code, event, captcha_passed=False)
        if outcome.refused == "captcha_required" and request["captcha_id"]:
            # Only a network past its refusals needs one: used up, then asked again.
            self._consume_captcha(request["captcha_id"], request["captcha_answer"], now)
            outcome = self.db.issue_code(plan, new_code, event, captcha_passed=True)
        refusal = quota.refusal_of(outcome, plan, now, policy)
        if refusal is not None:
            if outcome.refused == "prefix_minute":
                self._alert_breaker_tripped(prefix, outcome.open_until, policy)
            log.info("code refused for %s: %s", masked, refusal.code)
            raise refusal
        self.delivery.wake()
        return _ISSUE_CODE_ANSWER.dump(
            {
                "code_id": receipts.code_reference(self.keys.code_key, outcome.code_id),
                "expires_at": expires_at,
                "resend_after": int(policy.resend_cooldown.total_seconds()),
                "remaining_today": policy.daily_limit_per_destination
                - outcome.sent_today,
                "destination_masked": masked,
            }
        )

    def _refuse_pumped(self, destination, network, request, now, policy):
        """Countries outside ``SMS_ALLOWED_COUNTRY_CODES`` are refused, and
        a segment or network the pumping watch suspended answers
        ``sending_suspended`` (counted as a refusal of the client network,
        so its captcha gate closes sooner). From memory: no round trip."""
        if not pumping.is_allowed_country(destination, self.pumping.settings):
            raise RuleViolation("country_not_allowed")
        until = self.pumping.suspended_until(destination, network, now)
        if until is not None:
            self._count_ip_failure(_counted_address(request), now, policy)
            log.info(
                "code refused for %s: sending_suspended", mask_destination(destination)
            )
            raise Throttled(
                "sending_suspended", {"retry_after": pumping.retry_after(until, now)}
            )

    @staticmethod
    def _alert_breaker_tripped(prefix, open_until, policy):
        # An alert for the on-call: someone may be pumping SMS to premium numbers.
        log.error(
            "ALERT sms-pumping breaker tripped for prefix %s: more than %s sends "
            "a minute; sending suspended until %s",
            prefix,
            policy.prefix_sends_per_minute,
            open_until,
        )

    def _count_ip_failure(self, client_ip, now, policy):
        """One more refusal from this address (shared row: its own statement,
        committing the worker's open transaction first)."""
        if client_ip:
            self.db.bump_shared_counter(
                "ip_fail_hour", client_ip, domain.window_start(now, quota.HOUR), 10**9
            )

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
