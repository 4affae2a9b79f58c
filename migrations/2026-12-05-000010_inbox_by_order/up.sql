-- The inbox's key: an event id is unique within its order (src/store/load.rs). Every read and
-- write of a batch's events then lands on its orders' own leaves, where the random event ids of
-- the primary key put each on a leaf of its own: with the inbox much larger than shared_buffers,
-- a page to read and, after each checkpoint, to log whole (BENCHMARKS.md, "The drain as the inbox
-- and the history grow"). The primary key stays until the contract step (000013). `position`
-- rides along so an order's newest event and its recorded ids come from the index alone. Built
-- CONCURRENTLY, so a large inbox keeps taking the workers' writes while it builds (hence
-- metadata.toml, and this statement alone).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS processed_events_order_event_idx
    ON processed_events (order_id, event_id) INCLUDE (position);
