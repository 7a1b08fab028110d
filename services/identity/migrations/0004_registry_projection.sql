-- Why: registry_sync tells identity how an account's registry verification
-- stands (registry_verification_changed). Events may arrive twice or out of
-- order, so registry_as_of keeps the newest; class_name is the registry's
-- class for a passed account (recovery's classmates and the profile show it).
ALTER TABLE accounts
    ADD COLUMN class_name       text,
    ADD COLUMN registry_as_of   timestamptz;
