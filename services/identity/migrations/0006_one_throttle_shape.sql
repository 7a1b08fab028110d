-- One throttle shape in every service (services/common/plumbing/throttle_store.py):
-- identity's back-off rows gain the window start recovery's rows have.
ALTER TABLE throttles ADD COLUMN window_start timestamptz;
UPDATE throttles SET window_start = last_failure;
ALTER TABLE throttles ALTER COLUMN window_start SET NOT NULL;
