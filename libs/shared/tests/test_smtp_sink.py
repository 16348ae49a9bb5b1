"""The SMTP sink the tests mail through: what it keeps, and the faults it acts out."""

from __future__ import annotations

import smtplib

import pytest

from shared.testing.smtp import SmtpSink

MESSAGE = "From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


def send(sink: SmtpSink) -> None:
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def test_a_drop_after_data_keeps_the_email_and_leaves_the_sender_without_an_answer(smtp_sink: SmtpSink) -> None:
    sink = smtp_sink
    sink.drop_after_data(1)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(sink)
    assert sink.count == 1
    assert sink.drops_pending == 0
    send(sink)
    assert sink.count == 2


def test_a_refused_message_is_not_kept_and_not_counted_as_a_drop(smtp_sink: SmtpSink) -> None:
    sink = smtp_sink
    sink.drop_after_data(1)
    sink.refuse_next(1)
    with pytest.raises(smtplib.SMTPDataError):
        send(sink)
    assert (sink.count, sink.drops_pending) == (0, 1)
