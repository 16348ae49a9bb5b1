"""The email a customer receives for an order, and the SMTP backing service that carries it."""

from __future__ import annotations

import asyncio
import re
from email.charset import QP, Charset
from email.message import Message
from email.utils import format_datetime
from urllib.parse import unquote, urlsplit

import aiosmtplib
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.events import Envelope, OrderCreatedV1

_tracer = trace.get_tracer(__name__)

# What may stand before the @ without quoting; anything else is not a customer we can mail.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


# Readable in any mail client's source view, and 7-bit safe for any SKU a customer orders.
_UTF8_QUOTED_PRINTABLE = Charset("utf-8")
_UTF8_QUOTED_PRINTABLE.body_encoding = QP


class UndeliverableCustomer(ValueError):
    pass


class PermanentSmtpFailure(Exception):
    """The SMTP server refused for good (5xx): retrying cannot help."""


def message_id_for(event_id: object) -> str:
    # Derived from the event, so a resend after a crash carries the same Message-ID.
    return f"<{event_id}@notifier.dozen>"


def recipient_for(customer_id: str, domain: str) -> str:
    if not _LOCAL_PART.match(customer_id):
        raise UndeliverableCustomer(f"customer id {customer_id!r} cannot form an email address")
    return f"{customer_id}@{domain}"


def compose(event: Envelope[OrderCreatedV1], *, sender: str, recipient: str) -> Message:
    # The compat32 Message, not EmailMessage: the modern API parses every header it
    # is given through its header registry, which made composing this email cost ~2 ms of
    # CPU — more than sending it. Every value here is ours and checked (the recipient by
    # recipient_for, the sender by the settings), so there is nothing for that parsing to catch.
    order = event.data
    lines = [f"  {line.quantity} x {line.sku} at {line.unit_price_cents / 100:.2f}" for line in order.items]
    body = "\n".join(
        [
            f"Hello {order.customer_id},",
            "",
            f"we have accepted your order {order.order_id}:",
            *lines,
            f"Total: {order.total_cents / 100:.2f} {order.currency}",
            "",
            "Dozen",
        ]
    )
    message = Message()
    message["MIME-Version"] = "1.0"
    # Sets Content-Type text/plain; charset="utf-8" and the transfer encoding.
    message.set_payload(body, _UTF8_QUOTED_PRINTABLE)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"Your order {order.order_id} is accepted"
    message["Date"] = format_datetime(event.time)
    message["Message-ID"] = message_id_for(event.id)
    message["X-Dozen-Order-Id"] = str(order.order_id)
    message["X-Dozen-Event-Id"] = str(event.id)
    return message


class Mailer:
    """Sends over SMTP to the server named by a URL: smtp://[user:password@]host:port, or smtps://.

    Keeps up to ``connections`` SMTP sessions open and reuses them: a new TCP connection,
    greeting and EHLO per email cost more CPU than the email itself. A session the server
    has since closed is replaced once, transparently; after any other failure the session
    is dropped, so the next email starts from a clean connection.
    """

    def __init__(self, url: str, *, timeout_seconds: float, connections: int = 4) -> None:
        parts = urlsplit(url)
        if not parts.hostname:
            # NOTIFIER_SMTP_URL is validated to name a host; a default here would hide a bug.
            raise ValueError("the SMTP URL names no host")
        self._hostname = parts.hostname
        self._implicit_tls = parts.scheme == "smtps"
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout_seconds
        self._sessions = asyncio.Semaphore(connections)
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, message: Message) -> None:
        with _tracer.start_as_current_span(
            "smtp send",
            kind=SpanKind.CLIENT,
            attributes={
                "server.address": self._hostname,
                "server.port": self._port,
                "email.message_id": str(message["Message-ID"]),
            },
        ):
            try:
                await self._send(message)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                if all(refusal.code >= 500 for refusal in exc.recipients):
                    raise PermanentSmtpFailure(f"SMTP refused every recipient: {exc.recipients[0].message}") from exc
                raise
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code >= 500:
                    raise PermanentSmtpFailure(f"SMTP {exc.code}: {exc.message}") from exc
                raise

    async def close(self) -> None:
        """Say goodbye on every idle session (at shutdown)."""
        idle, self._idle = self._idle, []
        for session in idle:
            try:
                await session.quit()
            except aiosmtplib.SMTPException:
                session.close()

    async def _send(self, message: Message) -> None:
        async with self._sessions:
            session = self._idle.pop() if self._idle else None
            try:
                session = await self._deliver(session, message)
            except BaseException:
                if session is not None:
                    session.close()
                raise
            self._idle.append(session)

    async def _deliver(self, session: aiosmtplib.SMTP | None, message: Message) -> aiosmtplib.SMTP:
        if session is not None and session.is_connected:
            try:
                await session.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                # Closed while idle (a server-side timeout, a restart): once more, afresh.
                session.close()
            else:
                return session
        session = await self._connect()
        await session.send_message(message)
        return session

    async def _connect(self) -> aiosmtplib.SMTP:
        session = aiosmtplib.SMTP(
            hostname=self._hostname,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._implicit_tls,
            # smtps:// is TLS from the first byte; plain smtp:// is for sinks on a private network.
            start_tls=False,
            timeout=self._timeout,
        )
        await session.connect()
        return session
