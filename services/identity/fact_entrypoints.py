"""What other systems tell identity and what it does on its own: staff roles
(ops), wallet and course facts (events or the internal endpoint), the
registry projections (enrolments, verification results, change windows),
handing queued notices to verification, and hourly housekeeping. Mixed into
``IdentityService``; needs ``db``, ``clock``, ``keys`` and
``verification``."""

import logging
from datetime import timedelta

from services.common.contract.errors import (
    NotFound,
)
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.rpc import rpc
from services.common.plumbing.timers import timer
from services.common.rules.roles import role_names
from services.identity import domain
from services.identity.schemas import (
    AccountFactsRequest,
    SetRolesRequest,
)

__all__ = ["FactEntrypoints"]

log = logging.getLogger(__name__)

_ACCOUNT_FACTS = AccountFactsRequest()
_SET_ROLES = SetRolesRequest()


class FactEntrypoints:
    # -- staff roles -------------------------------------------------------------
    @rpc
    def set_roles(self, payload):
        """Ops grant staff roles (``school_admin`` of one school, ``reviewer``,
        ``ops``), replacing the account's previous ones. Every gateway drops
        its cached principals of the account at once (``roles_changed``)."""
        request = _SET_ROLES.load(payload)
        now = self.clock()
        roles = role_names(request["roles"])
        account_id = str(request["account_id"])
        if not self.db.update_roles(account_id, roles, now):
            raise NotFound("account_not_found")
        self.db.audit(request["actor"], account_id, "roles_set", now, roles=roles)
        self.db.add_event("roles_changed", {"account_id": account_id})
        self.db.commit()
        return {"account_id": account_id, "roles": roles}

    # -- facts other systems own ---------------------------------------------------
    @rpc
    def set_account_facts(self, payload):
        """The internal endpoint's way in (the events are the usual one)."""
        request = _ACCOUNT_FACTS.load(payload)
        account_id = str(request["account_id"])
        if request["balance_fen"] is not None:
            self.db.set_wallet_balance(
                account_id, request["balance_fen"], request["as_of"]
            )
        if request["owned"] is not None:
            self.db.set_owned_courses(account_id, request["owned"], request["as_of"])
        self.db.commit()
        return {"account_id": account_id}

    @event_handler("wallet", "wallet_balance_changed")
    def on_wallet_balance_changed(self, payload, envelope):
        self.db.set_wallet_balance(
            str(payload["account_id"]), payload["balance_fen"], payload["as_of"]
        )

    @event_handler("courses", "course_ownership_changed")
    def on_course_ownership_changed(self, payload, envelope):
        self.db.set_owned_courses(
            str(payload["account_id"]), payload["owned"], payload["as_of"]
        )

    @event_handler("registry_sync", "enrollment_changed")
    def on_enrollment_changed(self, payload, envelope):
        self.db.upsert_enrollment(payload)

    @event_handler("registry_sync", "registry_verification_changed")
    def on_registry_verification_changed(self, payload, envelope):
        self.db.apply_registry_result(
            {**payload, "account_id": str(payload["account_id"])}
        )

    @event_handler("registry_sync", "change_window_changed")
    def on_change_window_changed(self, payload, envelope):
        self.db.upsert_window({**payload, "fields": payload.pop("fields_")})

    @event_handler("identity", "notice_requested")
    def on_notice_requested(self, payload, envelope):
        """Hand a queued notice to verification's delivery queue, once: the
        notice key makes a repeated hand-over (a crash after the RPC) a no-op
        there, and the sealed destination is wiped here once it is handed."""
        notice = self.db.notice(payload["notice_id"])
        if notice is None or notice["queued_at"] is not None:
            return
        self.verification.send_notice(
            {
                "channel": notice["channel"],
                "destination": self.keys.notice_sealer.open(
                    notice["sealed_destination"]
                ),
                "kind": notice["kind"],
                "params": notice["params"],
                "notice_key": f"identity-notice:{notice['id']}",
            }
        )
        self.db.mark_notice_queued(notice["id"], self.clock())

    @timer(interval=3600)
    def purge_expired(self):
        """Hourly: throttle rows that no longer count, sessions dead 30 days."""
        now = self.clock()
        throttles, sessions = self.db.purge(
            now, now - domain.LONGEST_THROTTLE_WINDOW, now - timedelta(days=30)
        )
        # What a "not me" revert needs, kept past any cancel window only.
        self.db.forget_old_recovery_data(now - timedelta(days=30))
        self.db.commit()
        if throttles or sessions:
            log.info("purged %s throttle rows, %s sessions", throttles, sessions)
