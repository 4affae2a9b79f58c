CREATE INDEX IF NOT EXISTS processed_events_order_position_idx ON processed_events (order_id, position)
    WHERE order_id IS NOT NULL;
-- Both fail if one event id was recorded for two orders since: remove one of them first.
ALTER TABLE processed_events ADD PRIMARY KEY (event_id);
CREATE UNIQUE INDEX IF NOT EXISTS order_status_history_event_id_idx ON order_status_history (event_id);
CREATE INDEX IF NOT EXISTS order_status_history_order_id_idx ON order_status_history (order_id, id);
