"""The email a customer receives for an order, and the SMTP backing service that carries it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from email.charset import QP, Charset
from email.utils import format_datetime, formataddr, parseaddr
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


@dataclass(frozen=True)
class Sender:
    """Who the emails come from: the From header as sent, and the envelope's address."""

    header: str
    address: str

    @classmethod
    def parse(cls, mail_from: str) -> Sender:
        """``Name <address>`` or a bare address; a non-ASCII name is encoded (RFC 2047) once, here."""
        name, address = parseaddr(mail_from)
        if "@" not in address:
            raise ValueError(f"{mail_from!r} names no email address")
        return cls(header=formataddr((name, address), charset="utf-8"), address=address)


@dataclass(frozen=True)
class Email:
    """One email as it goes over SMTP: the envelope, and the message as bytes."""

    sender: str
    recipient: str
    message_id: str
    content: bytes


def compose(event: Envelope[OrderCreatedV1], *, sender: Sender, recipient: str) -> Email:
    """The customer's email, written out from a template.

    Not built as an email.message.Message: turning one into bytes folds and re-encodes every
    header, and the SMTP client then parses the addresses back out of it — together most of
    the notifier's CPU per order (profiled under `make bench`). Every header value here is
    ASCII and short by construction (the recipient from recipient_for, the sender encoded once
    in Sender.parse, ids, a date), so there is nothing to fold; the body, which may carry any
    SKU, is quoted-printable as before.
    """
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
    message_id = message_id_for(event.id)
    headers = [
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        f"From: {sender.header}",
        f"To: {recipient}",
        f"Subject: Your order {order.order_id} is accepted",
        f"Date: {format_datetime(event.time)}",
        f"Message-ID: {message_id}",
        f"X-Dozen-Order-Id: {order.order_id}",
        f"X-Dozen-Event-Id: {event.id}",
    ]
    encoded_body = _UTF8_QUOTED_PRINTABLE.body_encode(body).replace("\n", "\r\n")
    content = "\r\n".join([*headers, "", encoded_body]).encode("ascii")
    return Email(sender=sender.address, recipient=recipient, message_id=message_id, content=content)


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

    async def send(self, email: Email) -> None:
        with _tracer.start_as_current_span(
            "smtp send",
            kind=SpanKind.CLIENT,
            attributes={
                "server.address": self._hostname,
                "server.port": self._port,
                "email.message_id": email.message_id,
            },
        ):
            try:
                await self._send(email)
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

    async def _send(self, email: Email) -> None:
        async with self._sessions:
            session = self._idle.pop() if self._idle else None
            try:
                session = await self._deliver(session, email)
            except BaseException:
                if session is not None:
                    session.close()
                raise
            self._idle.append(session)

    async def _deliver(self, session: aiosmtplib.SMTP | None, email: Email) -> aiosmtplib.SMTP:
        if session is not None and session.is_connected:
            try:
                await session.sendmail(email.sender, [email.recipient], email.content)
            except aiosmtplib.SMTPServerDisconnected:
                # Closed while idle (a server-side timeout, a restart): once more, afresh.
                session.close()
            else:
                return session
        session = await self._connect()
        await session.sendmail(email.sender, [email.recipient], email.content)
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
