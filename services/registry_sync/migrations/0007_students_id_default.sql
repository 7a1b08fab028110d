-- Why: a school's first OneRoster roster is COPYd straight into students
-- (issue #23, import_worker.Import.students): COPY cannot compute a column,
-- so the record's id comes from this default, as the staging table's does.
ALTER TABLE students ALTER COLUMN id SET DEFAULT gen_random_uuid();
