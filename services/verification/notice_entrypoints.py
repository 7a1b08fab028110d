"""Security notices (no code, no quota): queued on the delivery queue once
per ``notice_key``. Mixed into ``VerificationService``; needs ``db``,
``clock``, ``keys`` and ``delivery``."""

from services.common.plumbing.rpc import rpc
from services.verification import domain
from services.verification.schemas import SendNoticeRequest

__all__ = ["NoticeEntrypoints"]

_SEND_NOTICE_REQUEST = SendNoticeRequest()


class NoticeEntrypoints:
    @rpc
    def send_notice(self, payload):
        """Queue a security notice (no code) on the delivery queue; no quota."""
        request = _SEND_NOTICE_REQUEST.load(payload)
        now = self.clock()
        destination = domain.normalise_destination(
            request["channel"], request["destination"]
        )
        subject, body = domain.render_notice(
            request["channel"], request["kind"], request["params"]
        )
        delivery_id = self.db.insert_notice(
            request["channel"],
            destination,
            self.keys.sealer.seal(
                {
                    "to": destination,
                    "subject": subject,
                    "body": body,
                    "kind": request["kind"],
                    "params": request["params"],
                }
            ),
            request["notice_key"],
            now,
        )
        self.db.commit()
        if delivery_id is not None:
            self.delivery.wake()
        return {"queued": delivery_id is not None}
