-- Why: recovery hands whole accounts over, so every secret it keeps is a
-- keyed hash (requester tokens, share tokens) or sealed with AES-GCM (the
-- new phone, the requester's display data, photos), and every limit is
-- enforced by a row PostgreSQL locks (one open flow per account, vouch and
-- assistance caps, the flow row itself for completion).

-- Forgot-phone flows (domain.py draws the states). A decoy flow (no account
-- matched) has account_id NULL and behaves like a real one up to the old
-- phone, which it never accepts: the first step cannot tell who exists.
CREATE TABLE phone_recoveries (
    id                  uuid PRIMARY KEY,
    account_id          uuid,
    school_code         text        NOT NULL,
    status              text        NOT NULL
                        CHECK (status IN ('matched', 'awaiting_vouches', 'completed',
                                          'cancelled', 'expired', 'failed', 'reverted')),
    requester_token_hash text       NOT NULL,
    old_phone_hash      text,
    old_phone_hint      text        NOT NULL,
    old_phone_failures  integer     NOT NULL DEFAULT 0,
    sealed_requester    bytea,      -- {name, class_name} for the vouch page
    sealed_new_phone    bytea,
    new_password_hash   text,
    share_token_hash    text,
    vouches_needed      integer     NOT NULL,
    expires_at          timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    completed_at        timestamptz,
    cancel_until        timestamptz,
    handed_over_at      timestamptz
);
-- One open flow per account: a second start waits until the first ends.
CREATE UNIQUE INDEX phone_recoveries_one_open ON phone_recoveries (account_id)
    WHERE account_id IS NOT NULL AND status IN ('matched', 'awaiting_vouches');
CREATE INDEX phone_recoveries_open_expiry ON phone_recoveries (expires_at)
    WHERE status IN ('matched', 'awaiting_vouches');

CREATE TABLE vouches (
    recovery_id uuid        NOT NULL REFERENCES phone_recoveries (id),
    voucher_id  uuid        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (recovery_id, voucher_id)
);

-- Per-voucher and per-requester counters: one row per (subject, period),
-- bumped by one conditional upsert, so N instances never pass a cap.
CREATE TABLE counters (
    subject  text    NOT NULL,   -- 'vouch-day:<account>', 'assist-day:<account>', ...
    period   text    NOT NULL,   -- a Beijing day or a term
    count    integer NOT NULL,
    PRIMARY KEY (subject, period)
);

-- Failure throttles (identity match per IP and per target, reset codes per
-- login, security answers per account): a growing count in a window.
CREATE TABLE throttles (
    key           text PRIMARY KEY,
    failures      integer     NOT NULL,
    window_start  timestamptz NOT NULL,
    blocked_until timestamptz
);

-- Duplicate-ID resolutions: a photo review, a classmate's assistance, or a
-- dispute of a completed phone recovery ("not me"), decided by a reviewer.
CREATE TABLE reviews (
    id           uuid PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('duplicate_photo', 'recovery_dispute')),
    account_id   uuid        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('open', 'approved', 'rejected')),
    sealed_photo bytea,
    photo_width  integer,
    photo_height integer,
    reason       text,
    decided_by   text,
    ref_id       uuid,
    created_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    purge_after  timestamptz
);
CREATE INDEX reviews_open ON reviews (created_at) WHERE status = 'open';
CREATE INDEX reviews_account ON reviews (account_id, created_at DESC);
-- One open photo review per account at a time.
CREATE UNIQUE INDEX reviews_one_open_photo ON reviews (account_id)
    WHERE status = 'open' AND kind = 'duplicate_photo';

CREATE TABLE assistance_requests (
    id            uuid PRIMARY KEY,
    account_id    uuid        NOT NULL,   -- the duplicate_pending requester
    classmate_id  uuid        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('open', 'approved', 'declined')),
    created_at    timestamptz NOT NULL,
    answered_at   timestamptz
);
CREATE INDEX assistance_account ON assistance_requests (account_id, created_at DESC);

-- Settled duplicates: the one row whose insert decides the ID number moves
-- (a second approval of the same account finds it and does nothing).
CREATE TABLE duplicate_resolutions (
    account_id  uuid PRIMARY KEY,
    resolution_id uuid        NOT NULL UNIQUE,
    via         text        NOT NULL,   -- 'review:<id>' or 'assistance:<id>'
    at          timestamptz NOT NULL
);

-- In-app inbox: requests to answer and outcomes; params carry only what the
-- recipient may see (masked or sealed where personal).
CREATE TABLE inbox_messages (
    id           uuid PRIMARY KEY,
    account_id   uuid        NOT NULL,
    kind         text        NOT NULL,
    ref_id       uuid,
    sealed_params bytea      NOT NULL,
    needs_answer boolean     NOT NULL,
    answer       boolean,
    created_at   timestamptz NOT NULL,
    read_at      timestamptz,
    answered_at  timestamptz
);
CREATE INDEX inbox_account ON inbox_messages (account_id, created_at DESC);

-- Who did what: never names, numbers, tokens.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    actor       text        NOT NULL,
    account_id  uuid,
    action      text        NOT NULL,
    object_ids  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    request_id  text,
    at          timestamptz NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, at);
