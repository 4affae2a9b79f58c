-- The worker's tables no longer reference the orders table: it is the order service's, which
-- may delete or archive its rows, may key them by UUID where these tables hold text, and may
-- live under another name (ORDERS_TABLE). The worker writes a row here only for an order whose
-- row it has just locked, so the references guarded nothing the worker could break. Databases
-- migrated by earlier builds had them; they go, so that every database has the same schema.
ALTER TABLE order_fulfillments DROP CONSTRAINT IF EXISTS order_fulfillments_order_id_fkey;
ALTER TABLE order_status_history DROP CONSTRAINT IF EXISTS order_status_history_order_id_fkey;
ALTER TABLE order_payments DROP CONSTRAINT IF EXISTS order_payments_order_id_fkey;
