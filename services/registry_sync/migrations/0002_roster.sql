-- Why: the school registry proper. A school's systems push students
-- (SCIM Users or OneRoster users) and classes (SCIM Groups or OneRoster
-- classes); registry verification matches accounts against these records.
--
-- * Records are soft-deleted (deleted_at): a SCIM DELETE answers 404 from then
--   on, but the audit trail and the effect on verified accounts stay
--   explainable; the unique indexes cover live records only, so a school may
--   push the same student number again.
-- * The ID number is sealed (AES-GCM) as the school wrote it, with a keyed
--   hash of its normalised form for lookups, as identity keeps it; id_hint is
--   the masked form admins see; id_problem names the ID rule a school's value
--   fails (kept, reported, never matched — the school's data is the school's
--   to fix; id_hash is then NULL).
-- * doc keeps the SCIM attributes the columns do not (name.middleName, …) so
--   a school reads back what it wrote; never the ID number.
-- * version is the SCIM ETag; source_modified_at is OneRoster's
--   dateLastModified (a delta older than the record loses).
CREATE TABLE students (
    id                 uuid PRIMARY KEY,
    school_code        text        NOT NULL REFERENCES schools (code),
    user_name          text        NOT NULL,
    external_id        text,
    student_number     text        NOT NULL,
    family_name        text,
    given_name         text,
    formatted_name     text,
    display_name       text,
    name_key           text        NOT NULL DEFAULT '',
    active             boolean     NOT NULL DEFAULT true,
    status             text        NOT NULL DEFAULT 'active',
    id_type            text,
    id_sealed          bytea,
    id_hash            text,
    id_hint            text,
    id_problem         text,
    grade              text,
    class_name         text,
    department         text,
    enrollment_year    integer,
    doc                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    source             text        NOT NULL CHECK (source IN ('scim', 'oneroster')),
    source_modified_at timestamptz,
    version            integer     NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    deleted_at         timestamptz
);
CREATE UNIQUE INDEX students_user_name ON students (school_code, lower(user_name))
    WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX students_number ON students (school_code, student_number)
    WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX students_external_id ON students (school_code, external_id)
    WHERE deleted_at IS NULL AND external_id IS NOT NULL;
CREATE INDEX students_updated ON students (school_code, updated_at);

CREATE TABLE classes (
    id           uuid PRIMARY KEY,
    school_code  text        NOT NULL REFERENCES schools (code),
    display_name text        NOT NULL,
    external_id  text,
    doc          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    source       text        NOT NULL CHECK (source IN ('scim', 'oneroster')),
    version      integer     NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    deleted_at   timestamptz
);
CREATE UNIQUE INDEX classes_external_id ON classes (school_code, external_id)
    WHERE deleted_at IS NULL AND external_id IS NOT NULL;
CREATE INDEX classes_school ON classes (school_code, updated_at);

-- display and member_type are the school's words for the membership, read back
-- as written.
CREATE TABLE class_members (
    class_id    uuid NOT NULL REFERENCES classes (id) ON DELETE CASCADE,
    student_id  uuid NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    display     text,
    member_type text,
    PRIMARY KEY (class_id, student_id)
);
CREATE INDEX class_members_student ON class_members (student_id);
