-- Why: identity providers (Entra ID, Okta) carry a student's number in
-- employeeNumber or userName, not in our extension (issue #25). Where a
-- school's student numbers and ID numbers come from is its own setting:
-- {"student_number": [...], "id_number": [...]} in order, NULL for the
-- defaults (registry_sync/scim.py, IDENTIFIER_SOURCES / DEFAULT_SOURCES).
ALTER TABLE schools ADD COLUMN scim_sources jsonb;
