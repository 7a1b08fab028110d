-- Why: accounts with their login names and real-name data. ID numbers are
-- kept only sealed (AES-GCM) plus a keyed hash for lookup; uniqueness of an
-- ID number holds among *active* accounts only, so a second registration
-- can wait as duplicate_pending until recovery settles it. Phones and
-- emails are unique among accounts that are not deactivated (a deactivated
-- account has released them).

CREATE TABLE accounts (
    id              uuid PRIMARY KEY,
    passport_id     text        NOT NULL UNIQUE,
    status          text        NOT NULL
                    CHECK (status IN ('active', 'duplicate_pending', 'deactivated')),
    phone           text,
    email           text,
    name            text,
    id_type         text,
    id_number_sealed bytea,
    id_number_hash  text,
    birth_date      date,
    password_hash   text,
    roles           text[]      NOT NULL DEFAULT ARRAY['student'],
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX accounts_phone_live ON accounts (phone)
    WHERE phone IS NOT NULL AND status <> 'deactivated';
CREATE UNIQUE INDEX accounts_email_live ON accounts (lower(email))
    WHERE email IS NOT NULL AND status <> 'deactivated';
CREATE UNIQUE INDEX accounts_id_number_active ON accounts (id_number_hash)
    WHERE status = 'active';
CREATE INDEX accounts_id_number_hash ON accounts (id_number_hash);

-- Who did what, when, under which request: never the personal data itself.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    account_id  uuid,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    request_id  text,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, at);
