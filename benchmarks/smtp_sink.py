"""An SMTP server for the benchmark that accepts every email and only counts them.

The tests' sink (aiosmtpd, shared.testing.smtp) costs ~0.8 ms of CPU per email here, taken
from the system the benchmark measures, which in production talks to a mail server elsewhere.
This one answers each command with a fixed reply and looks at nothing but where the message
ends: enough SMTP for Dozen's notifier (aiosmtplib), on the benchmark's own event loop.
"""

from __future__ import annotations

import asyncio
from typing import cast

_GREETING = b"220 bench-sink ESMTP\r\n"
_EHLO = b"250-bench-sink\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
_OK = b"250 OK\r\n"
_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
_BYE = b"221 Bye\r\n"
_END_OF_DATA = b"\r\n.\r\n"


class _Session(asyncio.Protocol):
    def __init__(self, sink: CountingSmtpSink) -> None:
        self._sink = sink
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(_GREETING)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None:
            if self._in_data:
                end = self._buffer.find(_END_OF_DATA)
                if end < 0:
                    return
                del self._buffer[: end + len(_END_OF_DATA)]
                self._in_data = False
                self._sink.accepted += 1
                self._transport.write(_OK)
                continue
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return
            verb = bytes(self._buffer[:4]).upper()
            del self._buffer[: end + 2]
            self._answer(self._transport, verb)

    def _answer(self, transport: asyncio.Transport, verb: bytes) -> None:
        if verb in (b"EHLO", b"HELO"):
            transport.write(_EHLO)
        elif verb == b"DATA":
            self._in_data = True
            # So that an empty message (".\r\n" at once) is found by the same end marker.
            self._buffer[:0] = b"\r\n"
            transport.write(_DATA)
        elif verb == b"QUIT":
            transport.write(_BYE)
            transport.close()
        else:  # MAIL, RCPT, RSET, NOOP
            transport.write(_OK)


class CountingSmtpSink:
    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(lambda: _Session(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
