"""A real SMTP server for tests (aiosmtpd), keeping what it accepts and refusing on demand."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from shared.testing.probes import free_port


class SmtpSink:
    def __init__(
        self, *, port: int | None = None, on_accepted: Callable[[bytes], None] | None = None, retain: bool = True
    ) -> None:
        """``port``: a free one unless given. ``on_accepted`` sees each accepted message;
        ``retain=False`` keeps none of them (a long-running sink, the development one)."""
        self.on_accepted = on_accepted
        self._retain = retain
        # As received; parsed only when read (parsing costs more than sending: ~0.8 ms an
        # email here, taken from whatever a benchmark measures beside the sink).
        self._raw: list[bytes] = []
        self._parsed: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._refusals: list[str] = []
        self._refuse_always: str | None = None
        self._refused_mailboxes: dict[str, str] = {}
        self._drops = 0
        # How long each message takes to be accepted: a slow server, not synchronisation.
        self.delay_seconds = 0.0
        # Messages whose DATA has arrived but which are not answered yet.
        self.in_progress = 0
        # The client end (host, port) of each SMTP connection that delivered: one per session.
        self.peers: set[tuple[str, int]] = set()
        self.port = port if port is not None else free_port()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen on the sink's port; after stop(), again on the same port (a server restart)."""
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse_next(self, count: int, reply: str = "451 4.3.0 try again later") -> None:
        """Answer the next ``count`` messages with ``reply`` instead of accepting them."""
        with self._lock:
            self._refusals.extend([reply] * count)

    def refuse_all(self, reply: str | None = "451 4.3.0 try again later") -> None:
        """Refuse every message with ``reply`` until called with None."""
        with self._lock:
            self._refuse_always = reply

    def drop_after_data(self, count: int) -> None:
        """Keep the next ``count`` messages, but drop each connection before answering its
        DATA: the email is delivered, and the sender cannot know it."""
        with self._lock:
            self._drops += count

    @property
    def drops_pending(self) -> int:
        with self._lock:
            return self._drops

    def refuse_mailbox(self, local_part: str, reply: str | None = "550 5.1.1 mailbox unavailable") -> None:
        """Refuse RCPT TO for ``local_part@`` any domain with ``reply``, until called with None."""
        with self._lock:
            if reply is None:
                self._refused_mailboxes.pop(local_part, None)
            else:
                self._refused_mailboxes[local_part] = reply

    def received(self) -> list[EmailMessage]:
        with self._lock:
            unread = self._raw[len(self._parsed) :]
            self._parsed.extend(message_from_bytes(raw, policy=policy.default) for raw in unread)
            return list(self._parsed)

    @property
    def count(self) -> int:
        """How many emails were accepted, without reading them."""
        with self._lock:
            return len(self._raw)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            refusal = self._refused_mailboxes.get(address.partition("@")[0])
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.in_progress += 1
        try:
            answer = await self._answer(session, envelope)
        finally:
            self.in_progress -= 1
        with self._lock:
            drop = self._drops > 0 and answer.startswith("250")
            self._drops -= drop
        if drop:
            server.transport.abort()
        return answer

    async def _answer(self, session: Any, envelope: Any) -> str:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        with self._lock:
            self.peers.add(tuple(session.peer))
            if self._refuse_always:
                return self._refuse_always
            if self._refusals:
                return self._refusals.pop(0)
            if self._retain:
                self._raw.append(envelope.content)
        if self.on_accepted is not None:
            self.on_accepted(envelope.content)
        return "250 2.0.0 accepted"
