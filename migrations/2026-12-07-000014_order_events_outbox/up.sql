-- The outbox of `orders.order.status_changed` (DESIGN §2c; README "Publishing status changes"):
-- one row per step an order's status takes, written in the transaction that takes it. The relay
-- (src/outbox/) publishes the rows in id order and deletes them once Redis holds them: the
-- stream is the record of what was published, so the table stays as small as the rows waiting.
CREATE TABLE order_events_outbox (
    id             BIGSERIAL PRIMARY KEY,
    -- The CloudEvent id: the same on every attempt, so subscribers dedupe on it, and the relay
    -- finds in the stream what a relay that died before deleting its rows had published.
    event_id       UUID NOT NULL DEFAULT gen_random_uuid(),
    order_id       TEXT NOT NULL,
    -- The event's `data`: the order service's JSON (DESIGN §2c).
    data           JSONB NOT NULL,
    -- The trace of the entry that caused the change, continued by the published event.
    traceparent    TEXT,
    tracestate     TEXT,
    -- The entry that caused it, for operators.
    cause_topic    TEXT NOT NULL,
    cause_entry_id TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when Redis refused the row for good (larger than proto-max-bulk-len, say): it stays,
    -- with the reason, and the rows of its order wait behind it; other orders' rows go on.
    held_since     TIMESTAMPTZ,
    held_reason    TEXT
);

-- The orders held back: what the relay's read skips, nearly always empty.
CREATE INDEX order_events_outbox_held_idx ON order_events_outbox (order_id)
    WHERE held_since IS NOT NULL;

-- A commit that wrote rows wakes the relay at once (LISTEN order_events_outbox), rather than a
-- poll; one notification per statement, delivered on commit, none for a rollback.
CREATE FUNCTION order_events_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_events_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER order_events_outbox_notify AFTER INSERT ON order_events_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION order_events_outbox_notify();
