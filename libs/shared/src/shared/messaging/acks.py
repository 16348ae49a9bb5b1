"""Positive acknowledgements in as few frames as the order of settling allows.

``basic.ack`` with ``multiple`` settles every outstanding delivery of the channel up to its
tag. That is only right when nothing below the tag is still being worked on: a message in
its retry backoff, say, must stay unacked while the batch after it is acked. So every
delivery is registered when it arrives, and a batch is acked with one ``multiple`` frame
for the deliveries below the lowest one still open, and one frame each for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

log = logging.getLogger(__name__)


class Acknowledgements:
    def __init__(self) -> None:
        # Per channel (a robust channel gets a new one on reconnect, with tags from 1 again):
        # the tags delivered and not yet settled.
        self._open: dict[object, set[int]] = {}

    def delivered(self, message: AbstractIncomingMessage) -> None:
        channel = _channel_of(message)
        if channel not in self._open:
            # A new channel: the broker took back whatever the closed ones still held.
            for closed in [known for known in self._open if getattr(known, "is_closed", True)]:
                del self._open[closed]
        self._open.setdefault(channel, set()).add(_tag(message))

    def settled_elsewhere(self, message: AbstractIncomingMessage) -> None:
        """The delivery was settled on its own (nack, reject): no longer holds acks back."""
        self._open.get(_channel_of(message), set()).discard(_tag(message))

    async def ack(self, messages: Iterable[AbstractIncomingMessage]) -> None:
        by_channel: dict[object, list[AbstractIncomingMessage]] = {}
        for message in messages:
            by_channel.setdefault(_channel_of(message), []).append(message)
        for channel, acked in by_channel.items():
            still_open = self._open.get(channel, set())
            still_open.difference_update(_tag(message) for message in acked)
            floor = min(still_open, default=None)
            below = [message for message in acked if floor is None or _tag(message) < floor]
            above = [message for message in acked if floor is not None and _tag(message) > floor]
            try:
                if below:
                    await max(below, key=_tag).ack(multiple=True)
                for message in above:
                    await message.ack()
            except ChannelInvalidStateError:
                # The channel closed under us: the broker has put every unacked delivery of it
                # back, and redelivers them; their effects are committed, so they change nothing.
                log.warning("channel closed before the ack; the broker redelivers", extra={"count": len(acked)})
                self._open.pop(channel, None)


def _tag(message: AbstractIncomingMessage) -> int:
    if message.delivery_tag is None:
        raise ValueError("a consumed message has a delivery tag")
    return message.delivery_tag


def _channel_of(message: AbstractIncomingMessage) -> object:
    # The AMQP channel the delivery came on; its tags mean nothing on any other.
    try:
        return message.channel
    except ChannelInvalidStateError:
        return None
