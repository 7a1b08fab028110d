-- Duplicate-ID moves wait out a dispute window (issue #20 §2). A classmates'
-- resolution no longer moves the ID number at once: the account holding it
-- is told on every bound channel with a "not me" link, and the move takes
-- effect when the window ends undisputed ('holding' -> 'applied'), at once
-- on a reviewer's approval, or never once a dispute is upheld ('cancelled').
-- Rows written before this migration were applied when written.
ALTER TABLE duplicate_resolutions
    ADD COLUMN status       text NOT NULL DEFAULT 'applied'
        CHECK (status IN ('holding', 'applied', 'disputed', 'cancelled')),
    ADD COLUMN effective_at timestamptz,
    ADD COLUMN holder_id    uuid,
    ADD COLUMN decided_at   timestamptz;
CREATE INDEX duplicate_resolutions_due ON duplicate_resolutions (effective_at)
    WHERE status = 'holding';
CREATE INDEX duplicate_resolutions_resolution ON duplicate_resolutions (resolution_id);

-- A disputed move is a review of its own kind.
ALTER TABLE reviews DROP CONSTRAINT reviews_kind_check;
ALTER TABLE reviews ADD CONSTRAINT reviews_kind_check
    CHECK (kind IN ('duplicate_photo', 'recovery_dispute', 'duplicate_dispute'));
