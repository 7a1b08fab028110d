-- Why: "sent" meant only that the SMS provider answered 200 (issue #24).
-- A gateway with delivery receipts (Kannel, Alibaba's SmsReport) tells
-- whether the phone got the message; the delivery keeps that as
-- receipt_state (NULL: the provider sends no receipts). States and their
-- order: services/verification/receipts.py, delivery_states.mermaid.
ALTER TABLE deliveries
    ADD COLUMN receipt_state text
        CHECK (receipt_state IN ('submitted', 'delivered', 'failed', 'expired')),
    ADD COLUMN receipt_at timestamptz;

-- GET /api/v1/codes/{id} reads a code's delivery by its code.
CREATE INDEX deliveries_code ON deliveries (code_id) WHERE code_id IS NOT NULL;
