"""Outbox metrics (no per-order labels: cardinality stays fixed)."""

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_BACKLOG = Gauge("dozen_outbox_backlog", "Outbox rows not yet published.")
OUTBOX_OLDEST_AGE = Gauge(
    "dozen_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox row (0 when none)."
)
OUTBOX_PARKED = Gauge(
    "dozen_outbox_parked", "Outbox rows the relays stopped trying after the broker refused them too often."
)
OUTBOX_PUBLISHED = Counter("dozen_outbox_published", "Outbox rows published and confirmed by the broker.")
OUTBOX_PUBLISH_FAILURES = Counter(
    "dozen_outbox_publish_failures", "Outbox publishes that were not confirmed (retried later).", ["reason"]
)
INBOX_DUPLICATES = Counter(
    "dozen_inbox_duplicates", "Events seen before and dropped by the inbox (redeliveries).", ["event_type"]
)
ORDER_LATENCY = Histogram(
    "dozen_order_accepted_to_notified_seconds",
    "From an order's acceptance to the worker marking it notified; exemplars carry the trace id.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
