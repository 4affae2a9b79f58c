-- Orders as the order service owns them; this worker only moves `status` forward and records the
-- latest fulfillment status for display.
CREATE TABLE orders (
    id                 TEXT PRIMARY KEY,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'processing',
                           'partially_shipped', 'shipped', 'delivered', 'cancelled', 'refunded', 'failed')),
    fulfillment_status TEXT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
