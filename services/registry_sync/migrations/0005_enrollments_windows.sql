-- Why: course enrolments and change windows a school pushes (or that its
-- OneRoster enrollments imply) are kept here and published to identity,
-- which enforces the lock rules on authentication-info changes. Pushes may
-- come twice or out of order: as_of orders them, the newest wins, and an
-- event leaves only when a push changed something.
CREATE TABLE enrollments (
    school_code      text        NOT NULL REFERENCES schools (code),
    student_number   text        NOT NULL,
    course_id        text        NOT NULL,
    term             text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('school_arranged', 'free_elective')),
    exam_ended       boolean     NOT NULL,
    exam_ends_at     timestamptz,
    grades_published boolean     NOT NULL,
    makeup_pending   boolean     NOT NULL DEFAULT false,
    dropped          boolean     NOT NULL DEFAULT false,
    as_of            timestamptz NOT NULL,
    PRIMARY KEY (school_code, student_number, course_id, term)
);

CREATE TABLE change_windows (
    school_code text        NOT NULL REFERENCES schools (code),
    window_id   text        NOT NULL,
    fields      text[]      NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    cancelled   boolean     NOT NULL DEFAULT false,
    as_of       timestamptz NOT NULL,
    PRIMARY KEY (school_code, window_id)
);
