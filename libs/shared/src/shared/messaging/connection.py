"""One robust AMQP connection per process: it reconnects and restores topology by itself."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractRobustConnection


async def connect(url: str, *, connection_name: str) -> AbstractRobustConnection:
    # The name shows in the RabbitMQ UI, so an operator can tell which process holds what.
    return await aio_pika.connect_robust(url, client_properties={"connection_name": connection_name})
