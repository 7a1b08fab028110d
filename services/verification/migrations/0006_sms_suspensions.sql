-- Why: SMS pumping defence by conversion (issue #24, pumping.py). A number
-- segment or client network whose codes are hardly ever verified while its
-- volume surges is suspended for a while; one row per key keeps its current
-- (or last) suspension, its level for the doubling, the figures it was
-- judged on (for ops), and whether ops lifted it.
CREATE TABLE sms_suspensions (
    id           bigserial PRIMARY KEY,
    scope        text        NOT NULL CHECK (scope IN ('segment', 'network')),
    key          text        NOT NULL,
    level        integer     NOT NULL,
    tripped_at   timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    figures      jsonb       NOT NULL,
    lifted_at    timestamptz,
    lifted_by    text,
    UNIQUE (scope, key)
);
CREATE INDEX sms_suspensions_until ON sms_suspensions (until);

-- The watcher reads the SMS codes of the last minutes by issue time.
CREATE INDEX codes_issued_at ON codes (issued_at);
