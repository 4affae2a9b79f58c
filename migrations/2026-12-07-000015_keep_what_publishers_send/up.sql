-- What the publishers' events carry beyond what the rules read, kept rather than lost (issue 34):
-- the payment service's order number and own status, and each event's `metadata` (the
-- fulfillment's warehouse and carrier) on the status change it causes. The failure reason
-- already had its column. Nullable columns without a default: no table rewrite, rows written
-- before read NULL, and builds before this one go on writing their columns alone.
--
-- Each ALTER takes its table's lock for a moment; waiting at most 5 s for it, so that a long
-- transaction of the service's never queues every query of these tables behind this (rerun it).
SET LOCAL lock_timeout = '5s';
ALTER TABLE order_payments
    -- `ORD-…`, as the payment service sent it: the order service's name for the order.
    ADD COLUMN order_number    TEXT NULL,
    -- The payment service's own `status` field, as its latest verdict applied said it;
    -- informative: the topic alone decides `status`.
    ADD COLUMN reported_status TEXT NULL;
-- `json`, not `jsonb`: the text as the worker writes it (jsonb respells numbers, 1e+3 as 1000,
-- and a late event's recompute would find its rows changed), and any JSON (jsonb refuses \u0000).
ALTER TABLE order_status_history ADD COLUMN metadata JSON NULL;
