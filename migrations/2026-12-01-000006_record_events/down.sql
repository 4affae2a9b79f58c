ALTER TABLE order_fulfillments RESET (fillfactor);
ALTER TABLE order_payments RESET (fillfactor);
DROP INDEX processed_events_order_position_idx;
ALTER TABLE processed_events
    DROP COLUMN order_id,
    DROP COLUMN topic,
    DROP COLUMN position,
    DROP COLUMN said;
