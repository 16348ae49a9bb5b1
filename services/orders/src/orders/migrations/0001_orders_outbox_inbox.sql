-- Orders, the transactional outbox that carries their events to RabbitMQ, and the inbox
-- that makes consuming NotificationSent idempotent.

CREATE TABLE orders (
    id              uuid        PRIMARY KEY,
    customer_id     text        NOT NULL,
    currency        char(3)     NOT NULL,
    items           jsonb       NOT NULL,
    total_cents     bigint      NOT NULL CHECK (total_cents >= 0),
    status          text        NOT NULL CHECK (status IN ('accepted', 'notified')),
    idempotency_key text        NOT NULL,
    -- SHA-256 of the canonical request: a reused key with another body is refused.
    request_hash    text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at    timestamptz,
    notified_at     timestamptz,
    -- Idempotency keys are the client's: unique per customer, enforced here, never by
    -- check-then-insert, so concurrent duplicates cannot both win.
    CONSTRAINT orders_idempotency UNIQUE (customer_id, idempotency_key)
);

-- Keyset pagination of a customer's orders, newest first.
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC, id DESC);

CREATE TABLE outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    aggregate_id uuid        NOT NULL,
    -- The whole CloudEvent as published, trace context included.
    payload      jsonb       NOT NULL,
    traceparent  text,
    tracestate   text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz
);

-- What the relay scans and what the backlog metrics count: unpublished rows only.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Wake the relays at commit time instead of making them poll.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orders_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE inbox (
    event_id    uuid        PRIMARY KEY,
    event_type  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
