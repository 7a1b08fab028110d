-- Why: the recovery service hands accounts over (forgot phone), takes them
-- back ("not me"), and moves ID numbers between accounts (duplicate ID).
-- identity applies each exactly once, keyed by recovery's own id, and keeps
-- what a revert needs (the phone and password hash before the hand-over,
-- sealed / as stored) until the cancel window is over.
ALTER TABLE accounts
    ADD COLUMN locked_at     timestamptz,
    ADD COLUMN locked_reason text;

CREATE TABLE account_recoveries (
    recovery_id        uuid PRIMARY KEY,
    account_id         uuid        NOT NULL REFERENCES accounts (id),
    sealed_old_phone   bytea,
    old_password_hash  text,
    applied_at         timestamptz NOT NULL,
    reverted_at        timestamptz
);
CREATE INDEX account_recoveries_account ON account_recoveries (account_id);

-- A duplicate ID settled by recovery: the binding moved from one account to
-- another, once per resolution.
CREATE TABLE id_moves (
    resolution_id   uuid PRIMARY KEY,
    account_id      uuid        NOT NULL REFERENCES accounts (id),
    from_account_id uuid,
    at              timestamptz NOT NULL
);
