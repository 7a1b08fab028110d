-- Why: the pumping watch (issue #24) read every SMS code of its ten-minute
-- window each check and worked out each one's client network in Python:
-- after a load of 30k sends, about a tenth of a core, taken from the logins
-- and sends running beside it (issue #23). The network is now
-- worked out once, when the code is issued (the send path has it already
-- for the suspension gate), and stored beside the code, so the watch counts
-- by segment and network in SQL and reads one row per busy key. Codes
-- issued before this migration have none; the watch falls back to their
-- client_ip for them.
ALTER TABLE codes ADD COLUMN client_network text;

-- The procedure of 0004, unchanged but for the network stored with the
-- code (a new argument makes a new procedure: the old one goes first).
DROP PROCEDURE issue_code;

CREATE PROCEDURE issue_code(
    p_address            text,         -- the counted client network, or NULL
    p_address_window     timestamptz,
    p_address_limit      integer,
    p_fail_window        timestamptz,
    p_captcha_after      integer,      -- failures of the address before a captcha
    p_captcha_passed     boolean,
    p_prefix             text,
    p_prefix_window      timestamptz,
    p_prefix_limit       integer,
    p_breaker_until      timestamptz,  -- when a breaker tripped now reopens
    p_destination        text,
    p_budget             text,
    p_day                date,
    p_now                timestamptz,
    p_cooldown_edge      timestamptz,
    p_daily_limit        integer,
    p_account            text,         -- the account's day window, or NULL
    p_account_window     timestamptz,
    p_account_limit      integer,
    p_channel            text,
    p_purpose            text,
    p_code_hash          text,
    p_client_ip          text,
    p_client_network     text,         -- pumping.network_of(p_client_ip), for the watch
    p_expires_at         timestamptz,
    p_sealed_message     bytea,
    p_event_id           uuid,
    p_event_payload      jsonb,        -- code_issued without its code_id
    p_request_id         text,
    INOUT refused            text DEFAULT NULL,
    INOUT open_until         timestamptz DEFAULT NULL,
    INOUT code_id            bigint DEFAULT NULL,
    INOUT sent_today         integer DEFAULT NULL,
    INOUT quota_last_sent_at timestamptz DEFAULT NULL
)
LANGUAGE plpgsql AS $$
DECLARE
    failures integer;
    took_prefix boolean;
    took_address boolean;
    account_count integer;
BEGIN
    -- transaction 1: the gate, the breaker and the shared windows
    IF p_address IS NOT NULL AND NOT p_captcha_passed THEN
        SELECT c.count INTO failures FROM rate_counters c
         WHERE c.scope = 'ip_fail_hour' AND c.key = p_address
           AND c.window_start = p_fail_window;
        IF coalesce(failures, 0) >= p_captcha_after THEN
            refused := 'captcha_required';
            RETURN;
        END IF;
    END IF;
    SELECT b.open_until INTO open_until FROM breakers b WHERE b.prefix = p_prefix;
    IF open_until > p_now THEN
        refused := 'suspended';
        RETURN;
    END IF;
    open_until := NULL;

    PERFORM set_config('synchronous_commit', 'off', true);
    WITH taken AS (
        INSERT INTO rate_counters AS c (scope, key, window_start, count)
        SELECT w.scope, w.key, w.window_start, 1
          FROM (VALUES ('ip_hour', p_address, p_address_window, p_address_limit),
                       ('prefix_minute', p_prefix, p_prefix_window, p_prefix_limit))
               AS w (scope, key, window_start, window_limit)
         WHERE w.key IS NOT NULL
         ORDER BY w.scope, w.key
        ON CONFLICT (scope, key, window_start) DO UPDATE
           SET count = c.count + 1
         WHERE c.count < (CASE c.scope WHEN 'ip_hour' THEN p_address_limit
                                       ELSE p_prefix_limit END)
        RETURNING c.scope
    )
    SELECT coalesce(bool_or(t.scope = 'prefix_minute'), false),
           coalesce(bool_or(t.scope = 'ip_hour'), false)
      INTO took_prefix, took_address
      FROM taken t;
    IF NOT took_prefix OR (p_address IS NOT NULL AND NOT took_address) THEN
        ROLLBACK;  -- what was taken goes back with the transaction
        PERFORM set_config('synchronous_commit', 'off', true);
        IF NOT took_prefix THEN
            refused := 'prefix_minute';
            open_until := p_breaker_until;
            INSERT INTO breakers (prefix, open_until, tripped_at)
            VALUES (p_prefix, p_breaker_until, p_now)
            ON CONFLICT (prefix) DO UPDATE
               SET open_until = EXCLUDED.open_until, tripped_at = EXCLUDED.tripped_at;
        ELSE
            refused := 'ip_hour';
        END IF;
        CALL count_address_failure(p_address, p_fail_window);
        RETURN;
    END IF;
    COMMIT;

    -- transaction 2: the send's own counters, the code, its delivery and event
    INSERT INTO destination_quota AS q (destination, budget, day, sent_today, last_sent_at)
    VALUES (p_destination, p_budget, p_day, 1, p_now)
    ON CONFLICT (destination, budget) DO UPDATE
       SET sent_today = CASE WHEN q.day = EXCLUDED.day THEN q.sent_today + 1 ELSE 1 END,
           day = EXCLUDED.day,
           last_sent_at = EXCLUDED.last_sent_at
     WHERE (p_cooldown_edge IS NULL OR q.last_sent_at IS NULL
            OR q.last_sent_at <= p_cooldown_edge)
       AND (q.day <> EXCLUDED.day OR q.sent_today < p_daily_limit)
    RETURNING q.sent_today INTO sent_today;
    IF sent_today IS NULL THEN
        refused := 'destination';
        SELECT q.last_sent_at INTO quota_last_sent_at FROM destination_quota q
         WHERE q.destination = p_destination AND q.budget = p_budget;
    ELSIF p_account IS NOT NULL THEN
        INSERT INTO rate_counters AS c (scope, key, window_start, count)
        VALUES ('account_day', p_account, p_account_window, 1)
        ON CONFLICT (scope, key, window_start) DO UPDATE
           SET count = c.count + 1
         WHERE c.count < p_account_limit
        RETURNING c.count INTO account_count;
        IF account_count IS NULL THEN
            refused := 'account';
        END IF;
    END IF;
    IF refused IS NOT NULL THEN
        ROLLBACK;
        sent_today := NULL;
        PERFORM set_config('synchronous_commit', 'off', true);
        -- Given back one statement each, in the order they were taken.
        IF p_address IS NOT NULL THEN
            UPDATE rate_counters SET count = greatest(count - 1, 0)
             WHERE scope = 'ip_hour' AND key = p_address
               AND window_start = p_address_window;
        END IF;
        UPDATE rate_counters SET count = greatest(count - 1, 0)
         WHERE scope = 'prefix_minute' AND key = p_prefix
           AND window_start = p_prefix_window;
        CALL count_address_failure(p_address, p_fail_window);
        RETURN;
    END IF;

    INSERT INTO codes (channel, destination, purpose, code_hash, account_id, client_ip,
                       client_network, quota_day, issued_at, expires_at)
    VALUES (p_channel, p_destination, p_purpose, p_code_hash, p_account, p_client_ip,
            p_client_network, p_day, p_now, p_expires_at)
    RETURNING id INTO code_id;
    INSERT INTO deliveries (code_id, channel, destination, sealed_message,
                            next_attempt_at, created_at)
    VALUES (code_id, p_channel, p_destination, p_sealed_message, p_now, p_now);
    INSERT INTO outbox (event_id, event_type, payload, request_id)
    VALUES (p_event_id, 'code_issued',
            p_event_payload || jsonb_build_object('code_id', code_id), p_request_id);
END;
$$;
