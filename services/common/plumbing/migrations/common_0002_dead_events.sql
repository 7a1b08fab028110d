-- Why: a handler that fails on one event every time would otherwise see it
-- redelivered for ever. Failures are counted per (handler, event); after
-- EVENT_MAX_ATTEMPTS the message is parked in dead_events, acknowledged so
-- the queue keeps flowing, and ops list and replay it from there
-- (python -m services.common.plumbing.dead_events). Malformed events are parked at
-- once: they would fail the same way on every delivery.
CREATE TABLE event_failures (
    handler     text        NOT NULL,
    event_id    text        NOT NULL,
    attempts    integer     NOT NULL,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, event_id)
);

CREATE TABLE dead_events (
    id           bigserial   PRIMARY KEY,
    handler      text        NOT NULL,
    queue        text        NOT NULL,
    source       text        NOT NULL,
    event_type   text        NOT NULL,
    event_id     text,
    body         jsonb       NOT NULL,
    reason       text        NOT NULL CHECK (reason IN ('failing', 'malformed')),
    error        text,
    attempts     integer     NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now(),
    replayed_at  timestamptz
);
CREATE INDEX dead_events_waiting ON dead_events (id) WHERE replayed_at IS NULL;
