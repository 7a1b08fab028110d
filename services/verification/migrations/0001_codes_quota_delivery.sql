-- Why: verification codes live only as keyed hashes; every quota (per
-- destination per Beijing day with a resend cooldown, per IP per hour, per
-- account per day, per phone prefix per minute) is a row updated atomically
-- with INSERT ... ON CONFLICT DO UPDATE ... WHERE <under limit>, so any number
-- of service instances can never over-issue. Messages wait for delivery
-- encrypted (they contain the code) and are wiped once sent.

CREATE TABLE codes (
    id           bigserial PRIMARY KEY,
    channel      text        NOT NULL CHECK (channel IN ('sms', 'email')),
    destination  text        NOT NULL,
    purpose      text        NOT NULL,
    code_hash    text        NOT NULL,
    account_id   text,
    client_ip    text,
    quota_day    date        NOT NULL,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    delivered_at timestamptz,
    used_at      timestamptz,
    dead_at      timestamptz
);
-- check_code looks for the live codes of one destination + purpose.
CREATE INDEX codes_destination_purpose ON codes (destination, purpose, issued_at DESC);

-- One row per destination: today's count and the last send, for the daily
-- quota and the resend cooldown in a single atomic statement.
CREATE TABLE destination_quota (
    destination  text PRIMARY KEY,
    day          date        NOT NULL,
    sent_today   integer     NOT NULL,
    last_sent_at timestamptz
);

-- Fixed-window counters: scope 'ip_hour', 'account_day', 'ip_fail_hour',
-- 'prefix_minute'.
CREATE TABLE rate_counters (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer     NOT NULL,
    PRIMARY KEY (scope, key, window_start)
);

-- Wrong guesses per destination + purpose, across all its codes.
CREATE TABLE guess_counters (
    destination    text        NOT NULL,
    purpose        text        NOT NULL,
    attempts       integer     NOT NULL DEFAULT 0,
    lockouts       integer     NOT NULL DEFAULT 0,
    lockout_day    date,
    locked_until   timestamptz,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (destination, purpose)
);

-- SMS-pumping breaker per phone prefix.
CREATE TABLE breakers (
    prefix      text PRIMARY KEY,
    open_until  timestamptz NOT NULL,
    tripped_at  timestamptz NOT NULL
);

CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    code_id         bigint      NOT NULL REFERENCES codes (id),
    channel         text        NOT NULL,
    destination     text        NOT NULL,
    sealed_message  bytea,               -- AES-GCM; NULL once delivered or failed
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE delivery_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint      NOT NULL REFERENCES deliveries (id),
    attempted_at timestamptz NOT NULL,
    provider     text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('sent', 'refused', 'error')),
    detail       text
);

CREATE TABLE captchas (
    id          uuid PRIMARY KEY,
    answer_hash text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
