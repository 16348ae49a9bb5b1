"""RabbitMQ: robust connections, nameko-style topology, confirmed publishing, a consumer runner."""

from shared.messaging.connection import connect
from shared.messaging.consumer import (
    ATTEMPTS_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_QUEUE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    REASON_HEADER,
    Consumer,
    Handler,
    Unprocessable,
)
from shared.messaging.lifecycle import amqp_connection, queue_consumer
from shared.messaging.publisher import (
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
    "ConfirmTimeout",
    "Consumer",
    "ConsumerQueue",
    "Handler",
    "Nacked",
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
    "open_confirming_channel",
    "queue_consumer",
]
