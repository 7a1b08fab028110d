-- Two daily budgets per destination (issue #20 §7). Codes anyone can trigger
-- for a number or address (register, guardian check, a recovery's new phone)
-- take from the 'open' budget; codes an account holder needs for their own
-- account (new-device login, reset, changes, deactivation) from the
-- 'account' budget. A stranger asking for register codes to a victim's phone
-- spends only the open budget and can no longer lock the victim out of their
-- own login and reset codes until midnight. Each budget keeps its exactly-N
-- guarantee: one row per (destination, budget), taken by one upsert.
-- Rows written before counted every purpose: they become the open budget.
ALTER TABLE destination_quota ADD COLUMN budget text NOT NULL DEFAULT 'open'
    CHECK (budget IN ('open', 'account'));
ALTER TABLE destination_quota DROP CONSTRAINT destination_quota_pkey;
ALTER TABLE destination_quota ADD PRIMARY KEY (destination, budget);
