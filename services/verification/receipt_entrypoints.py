"""Delivery receipts and what a client reads of its code's delivery.

A receipt moves a delivery to ``delivered``, ``failed`` or ``expired``
(``receipts.py``, ``delivery_states.mermaid``); failed and expired give the
send back (``dependencies.give_back_send``). Mixed into
``VerificationService``; needs ``db``, ``clock`` and ``keys``."""

import logging

from services.common.contract.errors import Forbidden, NotFound
from services.common.plumbing.rpc import rpc
from services.verification import receipts
from services.verification.dependencies import (
    DELIVERY_RECEIPTS,
    give_back_send,
    mask_destination,
)
from services.verification.schemas import (
    AliyunReceiptsRequest,
    CodeDeliveryAnswer,
    CodeDeliveryRequest,
    KannelReceiptRequest,
    ReceiptAnswer,
)

__all__ = ["ReceiptEntrypoints"]

log = logging.getLogger(__name__)

_KANNEL_RECEIPT = KannelReceiptRequest()
_ALIYUN_RECEIPTS = AliyunReceiptsRequest()
_RECEIPT_ANSWER = ReceiptAnswer()
_CODE_DELIVERY_REQUEST = CodeDeliveryRequest()
_CODE_DELIVERY_ANSWER = CodeDeliveryAnswer()


class ReceiptEntrypoints:
    @rpc
    def record_kannel_receipt(self, payload):
        """Kannel's report on one delivery. Its URL's signature is checked
        (only Kannel got it from us); a duplicate, a report after the
        delivery was settled, and an interim report change nothing."""
        request = _KANNEL_RECEIPT.load(payload)
        delivery_id = request["delivery_id"]
        # The code key, under the receipt's own label (receipts.py).
        if not receipts.receipt_signature_valid(
            self.keys.code_key, delivery_id, request["signature"]
        ):
            raise Forbidden("receipt_signature_invalid")
        state = receipts.kannel_receipt_state(request["dlr_type"], request["report"])
        recorded = 0
        if state is not None:
            recorded = self._settle_delivery(delivery_id, state, "kannel")
        return _RECEIPT_ANSWER.dump({"recorded": recorded})

    @rpc
    def record_aliyun_receipts(self, payload):
        """A batch of Alibaba Cloud SmsReport items; each names its delivery
        by the ``OutId`` we sent (the gateway checked the push's token)."""
        request = _ALIYUN_RECEIPTS.load(payload)
        recorded = 0
        for report in request["reports"]:
            state = receipts.aliyun_receipt_state(report)
            recorded += self._settle_delivery(int(report["out_id"]), state, "aliyun")
        return _RECEIPT_ANSWER.dump({"recorded": recorded})

    def _settle_delivery(self, delivery_id, state, provider):
        now = self.clock()
        delivery = self.db.record_receipt(delivery_id, state, now)
        if delivery is None:
            self.db.commit()
            return 0
        if state in receipts.UNDELIVERED:
            give_back_send(self.db, delivery, now, f"receipt {state}")
            log.info(
                "delivery %s to %s: %s",
                delivery_id,
                mask_destination(delivery["destination"]),
                state,
            )
        self.db.commit()
        DELIVERY_RECEIPTS.labels(provider, state).inc()
        return 1

    @rpc
    def code_delivery(self, payload):
        """Where the code's message is: queued, sent (no receipts), submitted,
        delivered, failed or expired."""
        request = _CODE_DELIVERY_REQUEST.load(payload)
        code_id = receipts.code_id_of_reference(self.keys.code_key, request["code_id"])
        row = self.db.code_delivery(code_id) if code_id is not None else None
        if row is None:
            raise NotFound("code_not_found")
        state = receipts.client_state(row["status"], row["receipt_state"])
        return _CODE_DELIVERY_ANSWER.dump(
            {
                "code_id": request["code_id"],
                "channel": row["channel"],
                "destination_masked": mask_destination(row["destination"]),
                "state": state,
                "updated_at": row["receipt_at"] or row["finished_at"],
                "expires_at": row["expires_at"],
            }
        )
