-- The history's event ids, unique within their order as the inbox's are (000010): a late event's
-- withdrawn rows are found by their order, and another order's event with the same id is another
-- event. Built CONCURRENTLY (hence metadata.toml, and this statement alone); the unique index on
-- event ids alone goes with the contract step (000013).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS order_status_history_order_event_idx
    ON order_status_history (order_id, event_id);
