-- A contract step: it drops what builds before 000010 need (their duplicate check and upsert by
-- event id alone), so `order-worker migrate` holds it back and `order-worker migrate --contract`
-- applies it, once a rollback to such a build is no longer wanted (README, "Contract
-- migrations"). The indexes by order (000010-000012) take over: one random index entry less per
-- event in the inbox and per status change in the history (its index by (order_id, id) goes
-- too: the one by (order_id, event_id) finds an order's few rows, sorted by id after).
--
-- In one transaction, each lock taken for a moment; waiting at most 5 s for one, so that a long
-- transaction of the service's never queues every query of these tables behind this (rerun it).
SET LOCAL lock_timeout = '5s';
ALTER TABLE processed_events DROP CONSTRAINT IF EXISTS processed_events_pkey;
DROP INDEX IF EXISTS processed_events_order_position_idx;
DROP INDEX IF EXISTS order_status_history_event_id_idx;
DROP INDEX IF EXISTS order_status_history_order_id_idx;
