"""A lean HTTP/1.1 client for the load generator: keep-alive connections to one server.

Why not aiohttp's client, which Dozen itself uses: on this 2-core machine it costs 0.5 to
1.2 ms of CPU per request (measured), about what the gateway spends answering it. The load
generator shares the cores with the system it measures, so every millisecond it burns is
taken from Dozen. This client does the least a benchmark needs: prepared request bytes, one
request per connection at a time, and a response read by its Content-Length (Dozen's
answers always carry one). Anything else the server sends is an error, counted as one.
"""

from __future__ import annotations

import asyncio
from typing import cast

from harness.load import Answer

_HEADER_END = b"\r\n\r\n"


class ProtocolError(Exception):
    """The server's answer is not one this client reads (no Content-Length, say)."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future[Answer] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._length: int | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionResetError("the server closed the connection"))

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        if self.transport is None:
            raise ConnectionError("not connected")
        self._answer = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._length = None
        self.transport.write(request)
        return self._answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._length is None:
            end = self._buffer.find(_HEADER_END)
            if end < 0:
                return
            try:
                self._read_head(bytes(self._buffer[:end]))
            except (ValueError, ProtocolError) as error:
                self._fail(ProtocolError(str(error)))
                return
            del self._buffer[: end + len(_HEADER_END)]
        if self._length is not None and len(self._buffer) >= self._length:
            answer = Answer(self._status, self._headers, bytes(self._buffer[: self._length]))
            if self._headers.get("connection", "").lower() == "close":
                self.close()
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(answer)

    def _read_head(self, head: bytes) -> None:
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self._status = int(status_line.split(" ", 2)[1])
        self._headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            self._headers[name.strip().lower()] = value.strip()
        if "content-length" not in self._headers:
            raise ProtocolError(f"no Content-Length in an answer {self._status}")
        self._length = int(self._headers["content-length"])

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """Requests to one ``host:port``, over at most ``max_connections`` keep-alive connections."""

    def __init__(self, host: str, port: int, *, max_connections: int, timeout_seconds: float) -> None:
        self._host = host
        self._port = port
        self._max_connections = max_connections
        self._timeout = timeout_seconds
        self._idle: list[_Connection] = []
        self._open = 0

    def request_bytes(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}:{self._port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def send(self, request: bytes) -> Answer:
        """The answer, or an exception: ConnectionError, TimeoutError, ProtocolError, or
        OverflowError when every connection is busy (the generator is past what it may open)."""
        connection = await self._connection()
        try:
            async with asyncio.timeout(self._timeout):
                answer = await connection.send(request)
        except BaseException:
            connection.close()
            self._open -= 1
            raise
        if connection.closed:
            self._open -= 1
        else:
            self._idle.append(connection)
        return answer

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open -= 1
        if self._open >= self._max_connections:
            raise OverflowError(f"all {self._max_connections} connections are busy")
        self._open += 1
        try:
            _, connection = await asyncio.get_running_loop().create_connection(_Connection, self._host, self._port)
        except BaseException:
            self._open -= 1
            raise
        return connection

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
