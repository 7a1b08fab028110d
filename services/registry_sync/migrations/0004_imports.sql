-- Why: OneRoster CSV packages are imported in the background, by a worker
-- process (COPY cannot run on the service's green psycopg2 connections),
-- one at a time per school and several schools at once. The package waits
-- here (dropped once imported); progress and per-row errors are what the
-- school reads back. A worker that dies leaves its import 'running' with a
-- stale heartbeat; the service queues it again (its transaction rolled back,
-- so nothing was half-applied).
CREATE TABLE imports (
    id           uuid PRIMARY KEY,
    school_code  text        NOT NULL REFERENCES schools (code),
    status       text        NOT NULL
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    package      bytea,
    version      text,
    error_code   text,
    error_detail text,
    progress     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    warnings     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    attempts     integer     NOT NULL DEFAULT 0,
    heartbeat_at timestamptz,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX imports_waiting ON imports (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX imports_school ON imports (school_code, created_at);

CREATE TABLE import_errors (
    import_id uuid    NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    file      text    NOT NULL,
    line      integer NOT NULL,
    field     text,
    reason    text    NOT NULL,
    kept      boolean NOT NULL DEFAULT false
);
CREATE INDEX import_errors_import ON import_errors (import_id, file, line);

-- academicSessions: the current term is the school's explicit setting
-- (schools.current_term) or else the active term/semester covering today.
CREATE TABLE terms (
    school_code        text NOT NULL REFERENCES schools (code),
    sourced_id         text NOT NULL,
    title              text,
    type               text,
    start_date         date NOT NULL,
    end_date           date NOT NULL,
    active             boolean NOT NULL DEFAULT true,
    source_modified_at timestamptz,
    PRIMARY KEY (school_code, sourced_id)
);
ALTER TABLE schools ADD COLUMN current_term text;

ALTER TABLE classes
    ADD COLUMN class_type         text,
    ADD COLUMN course_id          text,
    ADD COLUMN term_ids           text[] NOT NULL DEFAULT '{}',
    ADD COLUMN source_modified_at timestamptz;
ALTER TABLE class_members ADD COLUMN source_id text;
