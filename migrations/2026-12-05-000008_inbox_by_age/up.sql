-- The inbox's rows by age, for its retention (src/store/retention.rs): the pruner walks the rows
-- older than INBOX_RETENTION in this order. event_id breaks ties: a batch's rows share their
-- processed_at (one transaction's now()). Built CONCURRENTLY, so an inbox of millions of rows
-- keeps taking the workers' writes while it builds (hence metadata.toml: outside a transaction,
-- and this one statement alone).
CREATE INDEX CONCURRENTLY IF NOT EXISTS processed_events_processed_at_idx
    ON processed_events (processed_at, event_id);
