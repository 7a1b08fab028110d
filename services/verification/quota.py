"""The quota ledger of one code send, as a plan the store executes. Pure.

Which counters a send takes, in which fixed order (so concurrent sends
never deadlock), and what each refusal answers::

    send ──► breaker of the number prefix open? ─────────────► 429 sending_suspended
      │
      ├─► shared windows, one autocommitted statement,   refused ─► what was taken goes back;
      │   locked in (scope, key) order:                            prefix_minute: the breaker trips
      │     prefix_minute  sends a minute per number prefix         ─► 429 sending_suspended
      │     ip_hour        sends an hour per client network        ip_hour: one more failure of the
      │                                                              address ─► 429 ip_limit_reached
      │
      ├─► the destination's budget row (open / account),  refused ─► 429 resend_too_soon or
      │   in the code's transaction: cooldown + per day              daily_limit_reached
      ├─► the account's day                               refused ─► 429 account_limit_reached
      └─► code + delivery + outbox row, same transaction

    Any refusal or failure after the shared windows gives them back
    (``plan.shared``): a send that did not happen costs no one quota.

``VerificationStore.take_shared`` and ``take_send_quota`` execute the plan;
the entrypoint only acts on the outcome.
"""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.common.contract.errors import Throttled
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
    "SharedOutcome",
    "plan_send",
    "after_shared",
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
    )


@dataclass(frozen=True)
class SharedOutcome:
    refused: Window | None  # the window that refused (prefix before ip)
    give_back: tuple  # the windows taken, to return when one refused


def after_shared(plan, counts):
    """The outcome of taking ``plan.shared``; ``counts``: ``{scope: count}``
    with None where that window's limit refused."""
    refused = [w for w in plan.shared if counts.get(w.scope) is None]
    if not refused:
        return SharedOutcome(None, ())
    taken = tuple(w for w in plan.shared if counts.get(w.scope) is not None)
    by_scope = {w.scope: w for w in refused}
    first = by_scope.get("prefix_minute") or by_scope["ip_hour"]
    return SharedOutcome(first, taken)


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
