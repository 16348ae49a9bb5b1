-- The trace each order's placement started (the W3C trace id of its OrderCreated event's
-- traceparent): an order links to its one trace, for as long as the order exists (the
-- outbox row that also carries it is pruned). NULL for an order placed untraced.
ALTER TABLE orders ADD COLUMN trace_id text;
