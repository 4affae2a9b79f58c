-- One step of the inbox's retention (src/store/retention.rs): of the next `max_rows` rows older
-- than `keep` after the cursor (`after_at`, `after_id`), deletes those whose order has no event
-- newer than `keep` (all of that order's old rows: an order's record is dropped whole, so a late
-- event never recomputes from half of it), and rows recorded without an order. Returns how many
-- rows went and the cursor to go on from (NULL once the walk is done).
--
-- SECURITY DEFINER, so the workers' role needs no DELETE on the inbox: it can drop rows only
-- through this, and never one younger than an hour (README, "Retention").
CREATE FUNCTION prune_processed_events(keep INTERVAL, max_rows INTEGER,
                                       after_at TIMESTAMPTZ, after_id TEXT)
RETURNS TABLE (deleted BIGINT, next_at TIMESTAMPTZ, next_id TEXT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    horizon TIMESTAMPTZ := now() - keep;
BEGIN
    IF keep < INTERVAL '1 hour' THEN
        RAISE EXCEPTION 'the inbox keeps at least an hour of events (asked to keep %)', keep;
    END IF;
    RETURN QUERY
    WITH scanned AS (
        SELECT p.event_id, p.order_id, p.processed_at FROM processed_events p
        WHERE p.processed_at < horizon AND (p.processed_at, p.event_id) > (after_at, after_id)
        ORDER BY p.processed_at, p.event_id
        LIMIT max_rows
    ), quiet AS (
        SELECT DISTINCT s.order_id FROM scanned s
        WHERE s.order_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM processed_events n
            WHERE n.order_id = s.order_id AND n.processed_at >= horizon)
    ), gone AS (
        DELETE FROM processed_events p
        WHERE p.processed_at < horizon
          AND (p.order_id IN (SELECT q.order_id FROM quiet q)
               OR (p.order_id IS NULL AND p.event_id IN (SELECT s.event_id FROM scanned s)))
        RETURNING 1
    ), last AS (
        SELECT s.processed_at, s.event_id FROM scanned s
        ORDER BY s.processed_at DESC, s.event_id DESC LIMIT 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT l.processed_at FROM last l),
           (SELECT l.event_id FROM last l);
END
$$;
-- Only the roles granted it (README, "Security") may call it.
REVOKE ALL ON FUNCTION prune_processed_events(INTERVAL, INTEGER, TIMESTAMPTZ, TEXT) FROM PUBLIC;
