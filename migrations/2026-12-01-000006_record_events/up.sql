-- What each event said, so a late event (older than one already applied to its order, as after a
-- replica died holding it) recomputes its order from the order's events in stream order. Rows
-- recorded before this migration have NULLs: their orders are recomputed from what is recorded.
ALTER TABLE processed_events
    ADD COLUMN order_id TEXT NULL,
    ADD COLUMN topic    TEXT NULL,
    -- The entry's place among every subscribed stream's entries, as fixed-width text that sorts
    -- (milliseconds-stage-sequence).
    ADD COLUMN position TEXT NULL,
    ADD COLUMN said     JSONB NULL;
-- An order's newest event, and all its events in order.
CREATE INDEX processed_events_order_position_idx ON processed_events (order_id, position)
    WHERE order_id IS NOT NULL;
