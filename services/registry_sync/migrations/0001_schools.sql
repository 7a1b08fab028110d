-- Why: schools are onboarded by ops; each gets one API token for its
-- systems (SCIM, OneRoster), shown once and kept only as a keyed hash, so a
-- database leak yields no usable token; rotating replaces the hash (the old
-- token dies at once). Every school-system and admin request is audited
-- here: who, which school, what, which object ids, the request id — never
-- personal data.
CREATE TABLE schools (
    code             text PRIMARY KEY,
    name             text        NOT NULL,
    region           text,
    token_hash       text        NOT NULL UNIQUE,
    token_issued_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    actor       text        NOT NULL,
    school_code text,
    action      text        NOT NULL,
    object_ids  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    request_id  text,
    at          timestamptz NOT NULL
);
CREATE INDEX audit_log_school ON audit_log (school_code, at);
