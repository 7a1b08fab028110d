-- Why: registry verification (学籍核验). One row per account: what the
-- student submitted (sealed: it holds a name and maybe an ID number), the
-- outcome, and the registry record it matched or was linked to by a school
-- admin. A pending or failed row is re-checked when roster data for its
-- student number arrives, so nobody resubmits; a passed one follows its
-- record (transferred, inactive). Mismatches are field names only — never
-- the registry's values.
CREATE TABLE verifications (
    account_id     uuid PRIMARY KEY,
    school_code    text        NOT NULL,
    student_number text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('pending', 'passed', 'failed')),
    code           text,
    mismatches     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    submission     bytea       NOT NULL,
    student_id     uuid,
    class_name     text,
    linked_by      text,
    link_reason    text,
    correction_note text,
    verified_since timestamptz,
    submitted_at   timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX verifications_number ON verifications (school_code, student_number);
CREATE INDEX verifications_unmatched ON verifications (school_code, updated_at)
    WHERE status <> 'passed';
-- One account per registry record: a second account claiming a record that
-- already verified someone fails (record_claimed) instead of sharing it.
CREATE UNIQUE INDEX verifications_one_account_per_record
    ON verifications (school_code, student_number) WHERE status = 'passed';
