"""Password reset: by a code to the bound phone, a code to the bound email,
or the three security questions. Mixed into ``RecoveryService``.

No enumeration: for a login that matches no account every answer here has
the same status, shape and timing as for one that does — the methods and
their masks are derived from a keyed hash of the login (so asking again
agrees), a code request answers 202 without sending, a reset answers like
a wrong code or wrong answers, and the same per-login limits apply."""

import logging

from services.common.contract.errors import (
    InvalidRequest,
    RuleViolation,
    Throttled,
)
from services.common.plumbing.rpc import rpc
from services.common.rules.contacts import canonical_login
from services.recovery import domain
from services.recovery.dependencies import AnswerFloor
from services.recovery.schemas import (
    ResetCodeRequest,
    ResetMethodsRequest,
    ResetRequest,
)

__all__ = ["PasswordResetEntrypoints"]

log = logging.getLogger(__name__)

_METHODS = ResetMethodsRequest()
_CODE = ResetCodeRequest()
_RESET = ResetRequest()

_ALTERNATIVES = {
    "forgot_phone": "/api/v1/phone-recoveries",
    "register": "/api/v1/accounts",
}


class PasswordResetEntrypoints:
    """Needs ``db``, ``clock``, ``keys``, ``config``, ``identity`` and
    ``verification`` of the service."""

    def _reset_view(self, login):
        """``(targets or None, methods, login key)`` for a login."""
        # One spelling per login (identity resolves the same way): spaces,
        # full-width digits or a small x give no fresh throttle key.
        kind, value = canonical_login(login)
        login_key = self.keys.hash("login", kind, value)
        targets = self.identity.reset_targets({"login": login})
        if targets["found"]:
            methods = domain.real_methods(
                targets, self.policy.security_questions_enabled
            )
            return targets, methods, login_key
        digest = self.keys.digest("decoy-methods", kind, value)
        methods = domain.decoy_methods(
            digest, kind, value, self.policy.security_questions_enabled
        )
        return None, methods, login_key

    @rpc
    def reset_methods(self, payload):
        """The methods this login's account set up, masked; with none left
        the alternatives (forgot-phone recovery, registering anew)."""
        request = _METHODS.load(payload)
        floor = AnswerFloor(self.policy.answer_floor_seconds)
        _, methods, _ = self._reset_view(request["login"])
        floor.wait()
        return {"methods": methods, "alternatives": dict(_ALTERNATIVES)}

    @rpc
    def send_reset_code(self, payload):
        """A ``reset_password`` code to the login's bound phone or email,
        without the caller knowing the number: 202 with its mask."""
        request = _CODE.load(payload)
        floor = AnswerFloor(self.policy.answer_floor_seconds)
        now = self.clock()
        targets, methods, login_key = self._reset_view(request["login"])
        method = next((m for m in methods if m["method"] == request["method"]), None)
        if method is None:
            floor.wait()
            raise RuleViolation("method_unavailable", {"methods": _names(methods)})
        cooldown = self.policy.reset_cooldown
        cool_key = cooldown.key(login_key)
        try:
            self.throttles.refuse_if_blocked(cooldown, [cool_key], now)
        except Throttled:
            floor.wait()
            raise
        self.throttles.hit(
            domain.RESET_CODES_PER_LOGIN,
            domain.RESET_CODES_PER_LOGIN.key(login_key),
            now,
        )
        self.throttles.record(cooldown, cool_key, now)
        if targets is not None:
            channel = request["method"]
            destination = targets["phone"] if channel == "sms" else targets["email"]
            try:
                self.verification.issue_code(
                    {
                        "channel": channel,
                        "destination": destination,
                        "purpose": "reset_password",
                        "account_id": targets["account_id"],
                        "client_ip": request["client_ip"],
                    }
                )
            except Throttled as refusal:
                # The destination's own quota (codes for other purposes today):
                # answering differently would tell that the account exists.
                log.warning("reset code not sent: %s", refusal.code)
        self.db.audit("anonymous", targets["account_id"] if targets else None,
                    "password_reset.code_requested", now, method=request["method"])  # fmt: skip
        self.db.commit()
        floor.wait()
        return {
            "method": request["method"],
            "target": method["target"],
            "resend_after": int(cooldown.window.total_seconds()),
        }

    @rpc
    def reset_password(self, payload):
        """Prove it (a code or the three answers) and set a new password; the
        account's sessions all end and every bound channel hears of it."""
        request = _RESET.load(payload)
        floor = AnswerFloor(self.policy.answer_floor_seconds)
        now = self.clock()
        targets, methods, login_key = self._reset_view(request["login"])
        if request["method"] not in _names(methods):
            floor.wait()
            raise RuleViolation("method_unavailable", {"methods": _names(methods)})
        # The same rules for everybody, before any proof is used up.
        self.identity.check_new_password({"password": request["new_password"]})
        fail_key = domain.RESET_FAILURES_PER_LOGIN.key(login_key)
        question_key = domain.QUESTION_FAILURES.key(login_key)
        keys = (
            [fail_key, question_key] if request["method"] == "questions" else [fail_key]
        )
        for key in keys:
            policy = (
                domain.QUESTION_FAILURES
                if key == question_key
                else domain.RESET_FAILURES_PER_LOGIN
            )
            refusal = domain.throttle_refusal(policy, self.db.blocked_until([key]), now)
            if refusal is not None:
                floor.wait()
                raise refusal
        try:
            self._prove(request, targets)
        except (RuleViolation, InvalidRequest) as wrong:
            self._count_reset_failure(request["method"], login_key, now)
            self.db.commit()
            floor.wait()
            raise wrong
        self.identity.reset_password(
            {
                "account_id": targets["account_id"],
                "password": request["new_password"],
                "method": request["method"],
                "client_ip": request["client_ip"],
                "device_id": request["device_id"],
            }
        )
        self.db.clear_throttle(fail_key)
        self.db.audit("anonymous", targets["account_id"], "password_reset.done", now,
                    method=request["method"])  # fmt: skip
        self.db.commit()
        # The account, for the gateway that served this to drop the account's
        # cached sessions at once (the others drop them on identity's
        # sessions_revoked broadcast); the client is not told it.
        return {"reset": True, "logged_in": False, "account_id": targets["account_id"]}

    def _prove(self, request, targets):
        if request["method"] == "questions":
            correct = (
                targets is not None
                and self.identity.check_security_answers(
                    {"account_id": targets["account_id"], "answers": request["answers"]}
                )["correct"]
            )
            if not correct:
                raise RuleViolation("answers_incorrect")
            return
        if targets is None:
            raise RuleViolation("code_invalid")  # what a wrong code answers
        destination = (
            targets["phone"] if request["method"] == "sms" else targets["email"]
        )
        self.verification.check_code(
            {
                "destination": destination,
                "purpose": "reset_password",
                "code": request["code"],
                "client_ip": request["client_ip"],
            }
        )

    def _count_reset_failure(self, method, login_key, now):
        policies = [domain.RESET_FAILURES_PER_LOGIN]
        if method == "questions":
            policies.append(domain.QUESTION_FAILURES)
        for policy in policies:
            key = policy.key(login_key)
            # The 3rd wrong set of answers locks the method for a day.
            self.throttles.record(policy, key, now)


def _names(methods):
    return [m["method"] for m in methods]
