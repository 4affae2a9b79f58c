ALTER TABLE order_status_history DROP COLUMN metadata;
ALTER TABLE order_payments DROP COLUMN reported_status, DROP COLUMN order_number;
