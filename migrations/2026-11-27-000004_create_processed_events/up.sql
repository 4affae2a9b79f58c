-- The inbox: every event applied (whatever its outcome), keyed by its idempotency key, so a
-- redelivered entry or a re-published CloudEvent changes nothing.
CREATE TABLE processed_events (
    event_id        TEXT PRIMARY KEY,
    stream_entry_id TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'stale', 'ignored')),
    processed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
