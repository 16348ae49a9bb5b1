"""The email, and the Mailer against a real SMTP server: sessions reused, replaced when dropped or failed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from uuid import uuid4

import aiosmtplib
import pytest

from notifier.mail import Email, Mailer, Sender, compose
from shared.events import OrderCreatedV1, OrderLineV1, new_event
from shared.testing.smtp import SmtpSink


def email(number: int) -> Email:
    message = EmailMessage()
    message["From"] = "orders@dozen.test"
    message["To"] = f"customer-{number}@customers.dozen.test"
    message["Subject"] = f"mail {number}"
    message["Message-ID"] = f"<{uuid4()}@notifier.dozen>"
    message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content("hello")
    return Email("orders@dozen.test", str(message["To"]), str(message["Message-ID"]), message.as_bytes())


async def test_one_session_carries_many_emails_and_a_dropped_one_is_replaced(smtp_sink: SmtpSink) -> None:
    mailer = Mailer(smtp_sink.url, timeout_seconds=5, connections=2)
    for number in range(5):
        await mailer.send(email(number))
    assert len(smtp_sink.received()) == 5
    assert len(smtp_sink.peers) == 1

    # The server restarts: the idle session is dead, and the next email goes out on a new one.
    smtp_sink.stop()
    smtp_sink.start()
    await mailer.send(email(5))
    assert len(smtp_sink.received()) == 6
    assert len(smtp_sink.peers) == 2
    await mailer.close()


async def test_concurrent_emails_share_at_most_the_configured_sessions(smtp_sink: SmtpSink) -> None:
    mailer = Mailer(smtp_sink.url, timeout_seconds=5, connections=2)
    await asyncio.gather(*(mailer.send(email(number)) for number in range(12)))
    assert len(smtp_sink.received()) == 12
    assert 1 <= len(smtp_sink.peers) <= 2
    await mailer.close()


async def test_a_refused_email_drops_its_session_and_the_next_starts_clean(smtp_sink: SmtpSink) -> None:
    mailer = Mailer(smtp_sink.url, timeout_seconds=5, connections=1)
    await mailer.send(email(0))
    smtp_sink.refuse_next(1)
    with pytest.raises(aiosmtplib.SMTPResponseException):
        await mailer.send(email(1))
    await mailer.send(email(2))
    assert [message["Subject"] for message in smtp_sink.received()] == ["mail 0", "mail 2"]
    assert len(smtp_sink.peers) == 2
    await mailer.close()


def test_the_composed_email_reads_back_with_its_headers_and_any_sku() -> None:
    data = OrderCreatedV1(
        order_id=uuid4(),
        customer_id="alice",
        currency="EUR",
        items=(OrderLineV1(sku="THÉ-VERT-1", quantity=2, unit_price_cents=1250),),
        total_cents=2500,
        created_at=datetime.now(UTC),
    )
    event = new_event(data, source="/dozen/orders", subject=str(data.order_id))
    composed = compose(event, sender=Sender.parse("Dozen <orders@dozen.test>"), recipient="alice@customers.dozen.test")
    parsed = message_from_bytes(composed.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects
    assert (composed.sender, composed.recipient) == ("orders@dozen.test", "alice@customers.dozen.test")
    assert parsed["To"] == "alice@customers.dozen.test"
    assert parsed["Date"].datetime == event.time.replace(microsecond=0)
    assert parsed["X-Dozen-Order-Id"] == str(data.order_id)
    assert parsed["X-Dozen-Event-Id"] == str(event.id)
    assert parsed["Subject"] == f"Your order {data.order_id} is accepted"
    assert parsed["Message-ID"] == f"<{event.id}@notifier.dozen>"
    assert parsed["From"] == "Dozen <orders@dozen.test>"
    assert "2 x THÉ-VERT-1 at 12.50" in parsed.get_content()
    assert "Total: 25.00 EUR" in parsed.get_content()
    assert composed.content.isascii()  # 7-bit on the wire, whatever the SKU
    assert all(len(line) <= 78 for line in composed.content.split(b"\r\n"))


def test_a_sender_named_in_any_script_is_encoded_once_and_a_sender_without_an_address_refused() -> None:
    sender = Sender.parse("Dozen Bestellungen für Sie <orders@dozen.test>")

    assert sender.address == "orders@dozen.test"
    assert sender.header.isascii()
    assert str(make_header(decode_header(sender.header))) == "Dozen Bestellungen für Sie <orders@dozen.test>"
    with pytest.raises(ValueError, match="names no email address"):
        Sender.parse("Dozen")
