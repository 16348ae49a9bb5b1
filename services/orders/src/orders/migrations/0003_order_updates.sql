-- Tell whoever listens (orders web, for the board's live updates) when an order moves on:
-- published, then notified. Sent at commit, so a listener never sees an update that rolls
-- back. Only the order's id and customer travel (well under NOTIFY's 8000-byte payload
-- limit, whatever the order holds); a listener reads the order itself if it wants it.
CREATE FUNCTION order_updated_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_updates', json_build_object('id', NEW.id, 'customer_id', NEW.customer_id)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER order_updated_notify AFTER UPDATE OF published_at, notified_at ON orders
    FOR EACH ROW
    WHEN (OLD.published_at IS DISTINCT FROM NEW.published_at OR OLD.notified_at IS DISTINCT FROM NEW.notified_at)
    EXECUTE FUNCTION order_updated_notify();
