DROP INDEX CONCURRENTLY IF EXISTS processed_events_order_event_idx;
