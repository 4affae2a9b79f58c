-- Rows recorded before events carried their order (migration 000006) are still found by their
-- event id alone, through this index of only them (the worker writes none any more).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS processed_events_without_order_idx
    ON processed_events (event_id) WHERE order_id IS NULL;
