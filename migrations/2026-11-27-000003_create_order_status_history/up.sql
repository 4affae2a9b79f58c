-- One row per order status change, written in the transaction that made it.
CREATE TABLE order_status_history (
    id              BIGSERIAL PRIMARY KEY,
    order_id        TEXT NOT NULL,
    from_status     TEXT NOT NULL,
    to_status       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    stream_entry_id TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order_id_idx ON order_status_history (order_id, id);
-- An event changes an order at most once: a second row for the same event would be a bug, and
-- this makes the transaction fail rather than record it.
CREATE UNIQUE INDEX order_status_history_event_id_idx ON order_status_history (event_id);
