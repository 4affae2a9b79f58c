DROP TABLE order_events_outbox;
DROP FUNCTION order_events_outbox_notify();
