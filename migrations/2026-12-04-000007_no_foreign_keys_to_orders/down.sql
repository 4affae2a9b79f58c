-- Nothing to restore: the worker's own `orders` table, if that is what this database has, may
-- be referenced again by hand (`REFERENCES orders (id)`); an order service's cannot be.
SELECT 1;
