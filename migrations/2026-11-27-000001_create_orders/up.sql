-- The orders table is not a migration's: its name (ORDERS_TABLE) and shape are the order
-- service's. `order-worker migrate` creates it before the migrations run when there is none,
-- or checks the order service's and adds the worker's one column (src/store/orders/adopt.rs).
-- Databases migrated before that change had it created here, as the worker creates it now.
SELECT 1;
