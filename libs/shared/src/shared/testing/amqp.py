"""Private names on a shared RabbitMQ, so concurrent runs never see each other's messages."""

from __future__ import annotations

import aio_pika

from shared.messaging.topology import dead_letter_names


class AmqpNames:
    """Exchange and queue names private to one user (a test, a benchmark, an audit run):
    each carries ``prefix``; all are deleted with their dead-letter pairs afterwards."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.issued: list[str] = []

    def __call__(self, name: str) -> str:
        unique = f"{self.prefix}.{name}"
        self.issued.append(unique)
        return unique

    async def delete_all(self, url: str) -> None:
        connection = await aio_pika.connect(url)
        try:
            for name in self.issued:
                for candidate in (name, *dead_letter_names(name)):
                    # A failed delete closes its channel, so each gets a fresh one.
                    for delete in ("queue_delete", "exchange_delete"):
                        channel = await connection.channel()
                        try:
                            await getattr(channel, delete)(candidate)
                        except aio_pika.exceptions.AMQPError:
                            pass
                        finally:
                            if not channel.is_closed:
                                await channel.close()
        finally:
            await connection.close()
