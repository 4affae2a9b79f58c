-- The orders table is the order service's: no migration drops it.
SELECT 1;
