-- Each fulfillment's latest status: an order with several warehouses has several rows, and its
-- status is derived from all of them.
CREATE TABLE order_fulfillments (
    fulfillment_id TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'planning', 'picking', 'pick_failed',
                       'picked', 'packing', 'pack_failed', 'packed', 'ready', 'shipped', 'completed',
                       'cancelled')),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_fulfillments_order_id_idx ON order_fulfillments (order_id);
