-- One row per notification sent. The unique OrderCreated event id is the inbox: a
-- redelivered event finds its row and sends nothing again.

CREATE TABLE notifications (
    -- Derived from the OrderCreated event id, so a re-run yields the same id.
    id                     uuid        PRIMARY KEY,
    order_created_event_id uuid        NOT NULL UNIQUE,
    order_id               uuid        NOT NULL,
    customer_id            text        NOT NULL,
    channel                text        NOT NULL CHECK (channel IN ('email')),
    recipient              text        NOT NULL,
    message_id             text        NOT NULL,
    sent_at                timestamptz NOT NULL,
    recorded_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX notifications_by_order ON notifications (order_id);
