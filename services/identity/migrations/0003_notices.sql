-- Why: every credential change is announced on every channel the account
-- had bound before it (an attacker who changed the phone must not be able
-- to silence the old one). The notice is written in the same transaction as
-- the change, with its destination sealed (AES-GCM), and handed to
-- verification's delivery queue by identity's own handler of the
-- notice_requested outbox event; the destination is wiped once handed over.
-- A deactivation's notices are written before the account's data is erased.
CREATE TABLE notices (
    id                  bigserial   PRIMARY KEY,
    account_id          uuid        NOT NULL,
    kind                text        NOT NULL,
    channel             text        NOT NULL CHECK (channel IN ('sms', 'email')),
    sealed_destination  bytea,
    params              jsonb       NOT NULL,
    created_at          timestamptz NOT NULL,
    queued_at           timestamptz
);
CREATE INDEX notices_account ON notices (account_id, created_at DESC);
