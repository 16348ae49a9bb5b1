"""Consumer metrics, labelled by queue (a handful per service: bounded cardinality)."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_HANDLED = Counter(
    "dozen_messages_handled",
    "Deliveries settled, by how: acked, dead_lettered or requeued.",
    ["queue", "outcome"],
)
MESSAGE_RETRIES = Counter("dozen_message_retries", "Handler failures that were tried again.", ["queue"])
MESSAGE_FAILURES = Counter("dozen_message_failures", "Handler attempts that raised (retried or not).", ["queue"])
QUEUE_MESSAGES = Gauge(
    "dozen_queue_messages",
    "Messages waiting in a queue (ready, not yet delivered), as its consumer last saw.",
    ["queue"],
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "dozen_publish_confirm_seconds",
    "Time from publishing to the broker's confirm.",
    ["exchange"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PUBLISH_FAILURES = Counter(
    "dozen_publish_failures",
    "Publishes not confirmed: unroutable, nacked, timed out, broker unavailable.",
    ["exchange", "reason"],
)
MESSAGE_HANDLING_SECONDS = Histogram(
    "dozen_message_handling_seconds",
    "Time from delivery to settlement, retries included.",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "dozen_consumer_batch_size",
    "Deliveries handled together in one batch (one transaction, one ack frame).",
    ["queue"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
