"""The quota ledger of one code send, as a plan the store executes. Pure.

Which counters a send takes, in which fixed order (so concurrent sends
never deadlock), and what each refusal answers::

    send ──► failures of the client network this hour ≥ threshold, no captcha?
      │                                                   ──► 403 captcha_required
      ├─► breaker of the number prefix open? ─────────────► 429 sending_suspended
      │
      ├─► shared windows, one statement, its own          refused ─► all of it rolls back;
      │   transaction, row locks in (scope, key) order:              prefix_minute: the breaker trips
      │     ip_hour        sends an hour per client network           ─► 429 sending_suspended
      │     prefix_minute  sends a minute per number prefix          ip_hour ─► 429 ip_limit_reached
      │                                                              (+ one failure of the network)
      ├─► the destination's budget row (open / account),  refused ─► 429 resend_too_soon or
      │   in the code's transaction: cooldown + per day              daily_limit_reached
      ├─► the account's day                               refused ─► 429 account_limit_reached
      └─► code + delivery + outbox row, same transaction   (a refusal here rolls the code's
                                                            transaction back and gives the
                                                            shared windows back)

The store executes the whole plan in one call to the database
(``VerificationStore.issue_code``; the procedure is migration
``0004_issue_code_in_one_call.sql``) and answers a ``SendOutcome``;
``refusal_of`` says what a refused one answers. A send that did not happen
costs no one quota.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.common.contract.errors import Forbidden, Throttled
from services.verification.domain import (
    beijing_day,
    beijing_day_start,
    destination_refusal,
    next_beijing_midnight,
    quota_budget,
    seconds_until,
    window_start,
)

__all__ = [
    "Window",
    "SendPlan",
    "SendOutcome",
    "plan_send",
    "refusal_of",
    "suspended_refusal",
    "shared_refusal",
    "send_refusal",
    "HOUR",
    "MINUTE",
]

HOUR, MINUTE = 3600, 60


@dataclass(frozen=True)
class Window:
    """One counter of a send: ``limit`` per window starting at ``start``."""

    scope: str
    key: str
    start: datetime
    limit: int


@dataclass(frozen=True)
class SendPlan:
    shared: tuple  # Windows, taken together in one statement
    destination: str
    budget: str  # "open" or "account" (domain.quota_budget)
    day: date  # the Beijing day the destination's budget counts
    cooldown_edge: datetime  # the last send must be before this
    daily_limit: int
    account: Window | None
    fail_window: datetime  # the hour the network's refusals count in
    captcha_after: int  # refusals of the network this hour before a captcha
    breaker_until: datetime  # when the prefix's breaker reopens if it trips now

    @property
    def prefix(self):
        return self.shared[0]

    @property
    def address(self):
        """The client network's hour, or None (the request named none)."""
        return self.shared[1] if len(self.shared) > 1 else None


def plan_send(purpose, destination, account_id, client_address, prefix, now, policy):
    """What a send of ``purpose`` to ``destination`` takes, in order."""
    shared = [
        Window("prefix_minute", prefix, window_start(now, MINUTE),
               policy.prefix_sends_per_minute),
    ]  # fmt: skip
    if client_address:
        shared.append(
            Window(
                "ip_hour",
                client_address,
                window_start(now, HOUR),
                policy.hourly_limit_per_ip,
            )  # fmt: skip
        )
    account = None
    if account_id:
        account = Window("account_day", account_id, beijing_day_start(now),
                         policy.daily_limit_per_account)  # fmt: skip
    return SendPlan(
        shared=tuple(shared),
        destination=destination,
        budget=quota_budget(purpose),
        day=beijing_day(now),
        cooldown_edge=now - policy.resend_cooldown,
        daily_limit=policy.daily_limit_per_destination,
        account=account,
        fail_window=window_start(now, HOUR),
        captcha_after=policy.ip_failures_before_captcha,
        breaker_until=now + policy.breaker_open_for,
    )


@dataclass(frozen=True)
class SendOutcome:
    """What the store's one call answered. ``refused`` is None (sent) or
    the step that refused: ``captcha_required``, ``suspended`` (the breaker
    was open), ``prefix_minute``, ``ip_hour``, ``destination``, ``account``."""

    refused: str | None
    code_id: int | None = None
    sent_today: int | None = None
    open_until: datetime | None = None  # the breaker's, when suspended or tripped
    last_sent_at: datetime | None = None  # the destination's, when it refused


def refusal_of(outcome, plan, now, policy):
    """The error a refused send answers; None when it was sent."""
    refused = outcome.refused
    if refused is None:
        return None
    if refused == "captcha_required":
        return Forbidden("captcha_required")
    if refused == "suspended":
        return suspended_refusal(outcome.open_until, now)
    if refused == "prefix_minute":
        return shared_refusal(plan.prefix, now, policy)
    if refused == "ip_hour":
        return shared_refusal(plan.address, now, policy)
    if refused == "destination":
        return send_refusal(
            refused, {"last_sent_at": outcome.last_sent_at}, now, policy
        )
    if refused == "account":
        return send_refusal(refused, None, now, policy)
    raise ValueError(f"unknown refusal {refused!r}")


def suspended_refusal(open_until, now):
    """The number prefix's breaker is open (someone may be pumping SMS)."""
    if open_until and open_until > now:
        return Throttled(
            "sending_suspended", {"retry_after": seconds_until(open_until - now)}
        )
    return None


def shared_refusal(window, now, policy):
    """What a refused shared window answers (the prefix's trips its breaker)."""
    if window.scope == "prefix_minute":
        return Throttled(
            "sending_suspended",
            {"retry_after": int(policy.breaker_open_for.total_seconds())},
        )
    return Throttled(
        "ip_limit_reached",
        {"retry_after": seconds_until(window.start + timedelta(seconds=HOUR) - now)},
    )


def send_refusal(refused, destination_quota, now, policy):
    """What the send's own counters answer when one refused: ``refused`` is
    ``"destination"`` (with its budget row) or ``"account"``."""
    if refused == "destination":
        return destination_refusal(destination_quota, now, policy)
    return Throttled(
        "account_limit_reached", {"resets_at": next_beijing_midnight(now).isoformat()}
    )
