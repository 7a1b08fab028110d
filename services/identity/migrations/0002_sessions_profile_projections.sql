-- Why: everything identity keeps besides the account row's first shape.
-- Student-number (K-12) accounts, school data, guardian phones, security
-- questions; sessions and known devices; throttles for logins and username
-- recovery; linked third-party identities; and local projections of facts
-- other systems own (enrolments and change windows from registry_sync,
-- wallet balance and owned courses from the platform), read when deciding
-- auth-info changes and deactivation without a call at request time.

ALTER TABLE accounts
    ADD COLUMN school_code          text,
    ADD COLUMN student_number       text,
    ADD COLUMN department           text,
    ADD COLUMN enrollment_year      integer,
    ADD COLUMN registry_status      text NOT NULL DEFAULT 'unverified'
        CHECK (registry_status IN ('unverified', 'pending', 'passed', 'failed')),
    ADD COLUMN guardian_phone       text,
    ADD COLUMN guardian_verified_at timestamptz,
    -- [{question, answer_hash}] (argon2id of the normalised answer)
    ADD COLUMN security_questions   jsonb,
    ADD COLUMN deactivated_at       timestamptz;

-- One live account per student of a school.
CREATE UNIQUE INDEX accounts_student_live ON accounts (school_code, student_number)
    WHERE student_number IS NOT NULL AND status <> 'deactivated';

-- Opaque bearer tokens, kept only as keyed hashes.
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    token_hash  text        NOT NULL UNIQUE,
    account_id  uuid        NOT NULL REFERENCES accounts (id),
    device_id   text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoked_why text
);
CREATE INDEX sessions_account_live ON sessions (account_id) WHERE revoked_at IS NULL;

-- Devices an account has proved (a code to its phone, or registration).
CREATE TABLE devices (
    account_id    uuid        NOT NULL REFERENCES accounts (id),
    device_id     text        NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, device_id)
);

-- Failure counters with a growing delay, keyed 'login-account:<id>',
-- 'login-ip:<ip>', 'recovery-ip:<ip>', 'recovery-id:<hash>', ...
CREATE TABLE throttles (
    key           text PRIMARY KEY,
    failures      integer     NOT NULL,
    last_failure  timestamptz NOT NULL,
    blocked_until timestamptz
);

CREATE TABLE linked_identities (
    provider   text        NOT NULL,
    subject    text        NOT NULL,
    account_id uuid        NOT NULL REFERENCES accounts (id),
    linked_at  timestamptz NOT NULL,
    PRIMARY KEY (provider, subject),
    UNIQUE (account_id, provider)
);

-- Projection of registry_sync's enrollment_changed events (latest as_of wins).
CREATE TABLE enrollments (
    school_code      text        NOT NULL,
    student_number   text        NOT NULL,
    course_id        text        NOT NULL,
    term             text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('school_arranged', 'free_elective')),
    exam_ended       boolean     NOT NULL,
    exam_ends_at     timestamptz,
    grades_published boolean     NOT NULL,
    makeup_pending   boolean     NOT NULL,
    dropped          boolean     NOT NULL,
    as_of            timestamptz NOT NULL,
    PRIMARY KEY (school_code, student_number, course_id, term)
);

-- Projection of registry_sync's change_window_changed events.
CREATE TABLE change_windows (
    school_code text        NOT NULL,
    window_id   text        NOT NULL,
    fields      text[]      NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    cancelled   boolean     NOT NULL,
    as_of       timestamptz NOT NULL,
    PRIMARY KEY (school_code, window_id)
);

-- Facts published by the wallet and course systems, per account.
CREATE TABLE account_facts (
    account_id          uuid PRIMARY KEY,
    wallet_balance_fen  bigint      NOT NULL DEFAULT 0,
    wallet_as_of        timestamptz,
    owned_courses       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    courses_as_of       timestamptz
);
