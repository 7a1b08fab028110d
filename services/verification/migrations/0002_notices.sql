-- Why: the delivery queue also carries notices (not codes): "your phone was
-- taken over", "your password was reset", ... A notice has no code, and a
-- notice_key makes a retried send_notice call queue the message once.
ALTER TABLE deliveries ALTER COLUMN code_id DROP NOT NULL;
ALTER TABLE deliveries ADD COLUMN notice_key text;
CREATE UNIQUE INDEX deliveries_notice_key ON deliveries (notice_key)
    WHERE notice_key IS NOT NULL;
