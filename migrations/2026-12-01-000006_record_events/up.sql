-- What each event said, so a late event (older than one already applied to its order, as after a
-- replica died holding it) recomputes its order from the order's events in stream order. Rows
-- recorded before this migration have NULLs: their orders are recomputed from what is recorded.
ALTER TABLE processed_events
    -- Byte order: the index below compares order ids the cheapest way.
    ADD COLUMN order_id TEXT COLLATE "C" NULL,
    ADD COLUMN topic    TEXT NULL,
    -- The entry's place among every subscribed stream's entries: milliseconds, topic stage and
    -- sequence packed into a number that sorts the same way (src/position.rs).
    ADD COLUMN position BIGINT NULL,
    -- The fields its topic's rules read, as a JSON object (its order id aside).
    ADD COLUMN said     TEXT NULL;
-- An order's newest event, and all its events in order.
CREATE INDEX processed_events_order_position_idx ON processed_events (order_id, position)
    WHERE order_id IS NOT NULL;
-- Room on each page for the new version of a row the worker updates (every event moves a
-- fulfillment or a payment, and most move the order): the update is then HOT, touching no index.
-- This pays for the record above (BENCHMARKS.md, "The record of each event"). It applies to pages
-- written from now on; `VACUUM FULL` the tables to apply it to the existing ones. The orders
-- table gets it where the worker creates it; an order service's own is left as its owner set it.
ALTER TABLE order_fulfillments SET (fillfactor = 70);
ALTER TABLE order_payments SET (fillfactor = 70);
