"""What must hold after every fault, as queries over the services' own
databases (and the capture server for what left the platform).

Each check returns a list of violations (empty: it holds), so one scenario
reports every broken promise at once instead of the first.
"""

import importlib
import time
from collections import Counter

import psycopg2
import psycopg2.extras
import requests

from services.common.contract.vocabulary import BACKEND_SERVICES
from services.common.plumbing.handlers import RELIABLE_HANDLERS
from services.common.rules.contacts import normalise_mobile


def load_handlers():
    """``[(service, handler, source, event_type)]`` of every reliable handler
    of the platform whose source is one of its own services (wallet and
    courses are other systems: their events are not in any outbox here)."""
    for service in BACKEND_SERVICES:
        importlib.import_module(f"services.{service}.service")
    found = []
    for handler, (source, event_type) in RELIABLE_HANDLERS.items():
        service = handler.split(".")[1]
        if service in BACKEND_SERVICES and source in BACKEND_SERVICES:
            found.append((service, handler, source, event_type))
    return found


class Databases:
    """One autocommit connection per service database."""

    def __init__(self, env):
        self.env = env
        self._conns = {}

    def rows(self, service, sql, params=None):
        try:
            return self._rows(service, sql, params)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            # The server restarted under this connection: one fresh try.
            self._conns.pop(service).close()
            return self._rows(service, sql, params)

    def _rows(self, service, sql, params):
        conn = self._conns.get(service)
        if conn is None or conn.closed:
            conn = psycopg2.connect(self.env[f"{service.upper()}_DB_URI"])
            conn.autocommit = True
            self._conns[service] = conn
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, service, sql, params=None):
        row = self.rows(service, sql, params)[0]
        return next(iter(row.values()))

    def close(self):
        for conn in self._conns.values():
            conn.close()


# -- the platform answered every request ---------------------------------------
def every_request_answered(outcomes):
    """A success or a documented error for each; no 500, no hang, no
    error without a stable code."""
    return [
        f"{o.flow}/{o.step}: HTTP {o.status} code={o.code} after {o.elapsed:.1f}s"
        f" {o.error or ''}"
        for o in outcomes
        if o.platform_failure
    ]


# -- acknowledged changes are there exactly once; others at most once -----------
def _once(db, outcomes, flow, step, service, sql, key):
    violations = []
    for o in outcomes:
        if o.flow != flow or o.step != step:
            continue
        count = db.scalar(service, sql, _stored(o.ident))
        if o.acknowledged and count != 1:
            violations.append(f"{flow}: acknowledged {o.ident[key]} found {count}×")
        elif not o.acknowledged and count > 1:
            violations.append(f"{flow}: unacknowledged {o.ident[key]} found {count}×")
    return violations


def _stored(ident):
    """Identifiers as the services store them (phones in E.164)."""
    if "phone" in ident:
        return {**ident, "phone": normalise_mobile(ident["phone"])}
    return ident


def registrations_exactly_once(db, outcomes):
    return _once(
        db, outcomes, "register", "create", "identity",
        "SELECT count(*) FROM accounts WHERE phone = %(phone)s", "phone",
    )  # fmt: skip


def roster_pushes_exactly_once(db, outcomes):
    return _once(
        db, outcomes, "roster", "scim_create", "registry_sync",
        "SELECT count(*) FROM students WHERE school_code = %(school_code)s"
        " AND user_name = %(user_name)s", "user_name",
    )  # fmt: skip


def vouches_exactly_once(db, outcomes):
    return _once(
        db, outcomes, "vouch", "vouch", "recovery",
        "SELECT count(*) FROM vouches WHERE recovery_id = %(recovery_id)s"
        " AND voucher_id = %(voucher_id)s", "voucher_id",
    )  # fmt: skip


def recoveries_completed_once(db, flows):
    """Every flow whose vouches are all in is completed, handed over, and
    applied to the account exactly once (phone changed to the new one)."""
    violations = []
    for flow in flows:
        vouched = db.scalar(
            "recovery", "SELECT count(*) FROM vouches WHERE recovery_id = %s",
            (flow["recovery_id"],),
        )  # fmt: skip
        state = db.rows(
            "recovery",
            "SELECT status, handed_over_at FROM phone_recoveries WHERE id = %s",
            (flow["recovery_id"],),
        )[0]
        applied = db.scalar(
            "identity",
            "SELECT count(*) FROM account_recoveries WHERE recovery_id = %s",
            (flow["recovery_id"],),
        )
        phone = db.scalar(
            "identity", "SELECT phone FROM accounts WHERE id = %s",
            (flow["account_id"],),
        )  # fmt: skip
        if vouched >= 2:
            if state["status"] != "completed" or state["handed_over_at"] is None:
                violations.append(f"recovery {flow['recovery_id']}: {dict(state)}")
            if applied != 1 or phone != normalise_mobile(flow["new_phone"]):
                violations.append(
                    f"recovery {flow['recovery_id']}: applied {applied}×, "
                    f"phone is the new one: {phone == normalise_mobile(flow['new_phone'])}"
                )
        elif applied or state["status"] == "completed":
            violations.append(
                f"recovery {flow['recovery_id']}: completed with {vouched} vouch(es)"
            )
    return violations


# -- events: published once the change committed, handled once, none invented ---
def outbox_drained(db, timeout=60):
    """Every service's outbox fully relayed (waits for the relays to catch up)."""
    deadline = time.monotonic() + timeout
    while True:
        unsent = {
            service: db.scalar(
                service, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            )
            for service in BACKEND_SERVICES
        }
        if not any(unsent.values()):
            return []
        if time.monotonic() > deadline:
            return [f"outbox rows never published: {unsent}"]
        time.sleep(0.5)


def events_handled_exactly_once(db, handlers, timeout=60):
    """For each reliable handler: the events it handled are exactly the events
    its source published of that type (none missing, none invented — an
    event of a rolled-back change would be one nobody published), and none
    was parked."""
    deadline = time.monotonic() + timeout
    while True:
        violations = []
        for service, handler, source, event_type in handlers:
            published = {
                r["event_id"]
                for r in db.rows(
                    source,
                    "SELECT event_id::text FROM outbox WHERE event_type = %s",
                    (event_type,),
                )
            }
            handled = [
                r["event_id"]
                for r in db.rows(
                    service,
                    "SELECT event_id::text FROM processed_events WHERE handler = %s",
                    (handler,),
                )
            ]
            twice = [e for e, n in Counter(handled).items() if n > 1]
            missing = published - set(handled)
            invented = set(handled) - published
            if missing or invented or twice:
                violations.append(
                    f"{handler} on {source}.{event_type}: {len(missing)} missing, "
                    f"{len(invented)} never published, {len(twice)} twice"
                )
        parked = {
            service: db.scalar(service, "SELECT count(*) FROM dead_events")
            for service in BACKEND_SERVICES
        }
        if any(parked.values()):
            violations.append(f"events parked as dead: {parked}")
        if not violations or time.monotonic() > deadline:
            return violations
        time.sleep(0.5)


def registered_accounts_exist(db):
    """Every ``account_registered`` event names an account that exists: no
    event went out for a registration that was rolled back."""
    published = db.rows(
        "identity",
        "SELECT payload->>'account_id' AS account_id FROM outbox"
        " WHERE event_type = 'account_registered'",
    )
    ids = [r["account_id"] for r in published]
    if not ids:
        return []
    present = db.scalar(
        "identity", "SELECT count(*) FROM accounts WHERE id = ANY(%s::uuid[])", (ids,)
    )
    return [] if present == len(ids) else [
        f"{len(ids) - present} account_registered event(s) for accounts that do not exist"
    ]  # fmt: skip


# -- quotas ----------------------------------------------------------------------
def quota_exact(db, capture_url, phone, outcomes, limit=5):
    """The day's quota for one phone: exactly ``limit`` codes issued and
    ``limit`` distinct codes delivered, never more acknowledged than issued."""
    issued = db.scalar(
        "verification",
        "SELECT count(*) FROM codes WHERE destination = %s",
        (normalise_mobile(phone),),
    )

    # Distinct texts: a delivery whose sender was killed is sent again by
    # another instance once its lease runs out (at least once), same code.
    def distinct_delivered():
        return len(
            {
                message["body"]
                for message in requests.get(
                    f"{capture_url}/api/messages", params={"to": phone}, timeout=5
                ).json()
            }
        )

    deadline = time.monotonic() + 20
    while (delivered := distinct_delivered()) < issued and time.monotonic() < deadline:
        time.sleep(0.5)
    accepted = sum(1 for o in outcomes if o.acknowledged)
    refused_quota = sum(1 for o in outcomes if o.code == "daily_limit_reached")
    violations = []
    if issued != limit:
        violations.append(f"quota: {issued} codes issued for one phone, not {limit}")
    if delivered != issued:
        violations.append(f"quota: {delivered} messages delivered for {issued} codes")
    if accepted > issued:
        violations.append(f"quota: {accepted} sends acknowledged, {issued} issued")
    if refused_quota == 0:
        violations.append("quota: the burst never reached the daily limit")
    return violations


# The flows every fault scenario must see succeed again afterwards.
FLOWS = ("register", "login", "send_code", "roster")


def after_a_fault(db, handlers, capture_url, run):
    """Every promise both fault tiers check after a fault, as one list of
    violations: each flow succeeded again, every request answered, outboxes
    drained, every handler's set equal to its source's, every acknowledged
    change there exactly once, recoveries applied once, the burst exact."""
    outcomes, burst = run.outcomes, run.burst.outcomes
    after = {o.flow for o in outcomes if o.at > run.recovered_at and o.acknowledged}
    violations = [
        f"no {flow} succeeded after the fault" for flow in FLOWS if flow not in after
    ]
    violations += every_request_answered(outcomes + burst)
    violations += outbox_drained(db)
    violations += events_handled_exactly_once(db, handlers)
    violations += registrations_exactly_once(db, outcomes)
    violations += roster_pushes_exactly_once(db, outcomes)
    violations += vouches_exactly_once(db, outcomes)
    violations += recoveries_completed_once(db, run.flows)
    violations += registered_accounts_exist(db)
    violations += quota_exact(db, capture_url, run.burst_phone, burst)
    return violations
