"""RabbitMQ: robust connections, nameko-style topology, confirmed publishing, a consumer runner."""

from shared.messaging.connection import connect
from shared.messaging.consumer import (
    ATTEMPTS_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    Consumer,
    Unprocessable,
    each,
)
from shared.messaging.delivery import Batch, BatchHandler, Delivery, Handler, Outcomes
from shared.messaging.lifecycle import amqp_connection, queue_consumer
from shared.messaging.publisher import (
    BrokerUnavailable,
    ConfirmTimeout,
    Nacked,
    Publisher,
    PublishFailed,
    Unroutable,
    open_confirming_channel,
)
from shared.messaging.retry import RetryPolicy
from shared.messaging.topology import (
    REDELIVERY_LIMIT,
    ConsumerQueue,
    dead_letter_names,
    declare_consumer_queue,
    declare_event_exchange,
)

__all__ = [
    "ATTEMPTS_HEADER",
    "ORIGINAL_EXCHANGE_HEADER",
    "ORIGINAL_QUEUE_HEADER",
    "ORIGINAL_ROUTING_KEY_HEADER",
    "REASON_HEADER",
    "REDELIVERY_LIMIT",
    "Batch",
    "BatchHandler",
    "BrokerUnavailable",
    "ConfirmTimeout",
    "Consumer",
    "ConsumerQueue",
    "Delivery",
    "Handler",
    "Nacked",
    "Outcomes",
    "PublishFailed",
    "Publisher",
    "RetryPolicy",
    "Unprocessable",
    "Unroutable",
    "amqp_connection",
    "connect",
    "dead_letter_names",
    "declare_consumer_queue",
    "declare_event_exchange",
    "each",
    "open_confirming_channel",
    "queue_consumer",
]
