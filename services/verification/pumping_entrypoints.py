"""Ops' view of SMS pumping suspensions: the ones in force (or of the last
day) with the figures each was judged on, and lifting one. The judging is
``pumping.py``, run by the ``PumpingWatch`` provider. Mixed into
``VerificationService``; needs ``db``, ``clock`` and ``pumping``."""

import logging
from datetime import timedelta

from services.common.contract.errors import NotFound
from services.common.plumbing.rpc import rpc
from services.verification.schemas import (
    LiftSuspensionRequest,
    SuspensionsAnswer,
    SuspensionSchema,
    SuspensionsRequest,
)

__all__ = ["PumpingEntrypoints"]

log = logging.getLogger(__name__)

_SUSPENSIONS_REQUEST = SuspensionsRequest()
_SUSPENSIONS_ANSWER = SuspensionsAnswer()
_LIFT_REQUEST = LiftSuspensionRequest()
_SUSPENSION = SuspensionSchema()
# Ended suspensions stay listed this long (the repeat memory is a day).
ENDED_LISTED_FOR = timedelta(hours=24)


def _shown(row, now):
    return {**row, "active": row["until"] > now and row["lifted_at"] is None}


class PumpingEntrypoints:
    @rpc
    def list_sms_suspensions(self, payload):
        """In force now; with ``include_ended``, those of the last day too."""
        request = _SUSPENSIONS_REQUEST.load(payload)
        now = self.clock()
        since = now - ENDED_LISTED_FOR if request["include_ended"] else now
        rows = self.db.suspensions(since)
        self.db.commit()
        return _SUSPENSIONS_ANSWER.dump(
            {"suspensions": [_shown(row, now) for row in rows]}
        )

    @rpc
    def lift_sms_suspension(self, payload):
        """Ends a suspension now (idempotent: lifting an ended one answers it
        as it is). Its codes so far are not judged again."""
        request = _LIFT_REQUEST.load(payload)
        now = self.clock()
        row = self.db.lift_suspension(request["suspension_id"], now, request["actor"])
        if row is None:
            row = self.db.suspension(request["suspension_id"])
            if row is None:
                raise NotFound("suspension_not_found")
        else:
            log.warning(
                "sms suspension %s of %s %s lifted by %s",
                row["id"],
                row["scope"],
                row["key"],
                request["actor"],
            )
        self.db.commit()
        self.pumping.forget(row["scope"], row["key"])
        return _SUSPENSION.dump(_shown(row, now))
