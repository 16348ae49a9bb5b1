"""Consumer metrics, labelled by queue (a handful per service: bounded cardinality)."""

from prometheus_client import Counter, Histogram

MESSAGES_HANDLED = Counter(
    "dozen_messages_handled",
    "Deliveries settled, by how: acked, dead_lettered or requeued.",
    ["queue", "outcome"],
)
MESSAGE_RETRIES = Counter("dozen_message_retries", "Handler failures that were tried again.", ["queue"])
MESSAGE_HANDLING_SECONDS = Histogram(
    "dozen_message_handling_seconds",
    "Time from delivery to settlement, retries included.",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
