-- Each payment attempt's latest status as the payment service reported it: an order may have
-- several (a card declined, then another one accepted).
CREATE TABLE order_payments (
    payment_id TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
    amount     NUMERIC NULL,
    currency   TEXT NULL,
    reason     TEXT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_payments_order_id_idx ON order_payments (order_id);
-- A payment confirmed for a closed order is recorded with the outcome `conflict`.
ALTER TABLE processed_events DROP CONSTRAINT processed_events_outcome_check;
ALTER TABLE processed_events ADD CONSTRAINT processed_events_outcome_check
    CHECK (outcome IN ('applied', 'duplicate', 'stale', 'ignored', 'conflict'));
