-- One throttle shape in every service (services/common/plumbing/throttle_store.py):
-- recovery's window rows gain the last-attempt time identity's rows have.
ALTER TABLE throttles ADD COLUMN last_failure timestamptz;
UPDATE throttles SET last_failure = window_start;
ALTER TABLE throttles ALTER COLUMN last_failure SET NOT NULL;
