"""The faults a visitor can switch on while watching (`make fault`, the board's panel), each
defined once: what switching it on and off does to the running system.

The SMTP faults work the development mail server (shared.testing.smtp.SmtpSink, the same
sink and the same calls the fault suite makes); the pauses stop a process type's processes
with SIGSTOP and wake them with SIGCONT, as a host that freezes them would. None of this
exists in an image: the harness is development tooling, never deployed.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from shared.testing.smtp import SmtpSink

SMTP_BUSY = "451 4.3.0 mailbox busy, try again later"
SMTP_NO_SUCH_MAILBOX = "550 5.1.1 mailbox unavailable"
# A demo customer whose orders the poison fault makes unprocessable.
POISONED_CUSTOMER = "carol"
# Slower than a healthy server by far, well inside the notifier's SMTP timeout.
SMTP_SLOW_SECONDS = 1.0


@dataclass(frozen=True)
class Targets:
    """What faults act on: the mail server, and the processes of one run (the descendants of
    ``root_pid``: honcho's under `make dev`, the test's under a test stack)."""

    mailbox: SmtpSink
    root_pid: int

    def signal(self, service: str, command: str, signal_number: signal.Signals) -> int:
        """Send the signal to each process of the type; how many there were."""
        sent = 0
        for process in psutil.Process(self.root_pid).children(recursive=True):
            try:
                argv = process.cmdline()
            except psutil.Error:
                continue  # gone meanwhile
            if [Path(word).name for word in argv[-2:]] == [service, command]:
                process.send_signal(signal_number)
                sent += 1
        return sent


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    switch_on: Callable[[Targets], None]
    switch_off: Callable[[Targets], None]
    # The customer whose orders this fault sends to the dead-letter queue on purpose: parked
    # (`notifier dlq replay` brings them back), not lost.
    parks_orders_of: str | None = None


def _refusing(targets: Targets) -> None:
    targets.mailbox.refuse_all(SMTP_BUSY)


def _accepting(targets: Targets) -> None:
    targets.mailbox.refuse_all(None)


def _slow(targets: Targets) -> None:
    targets.mailbox.delay_seconds = SMTP_SLOW_SECONDS


def _fast(targets: Targets) -> None:
    targets.mailbox.delay_seconds = 0.0


def _poisoned(targets: Targets) -> None:
    targets.mailbox.refuse_mailbox(POISONED_CUSTOMER, SMTP_NO_SUCH_MAILBOX)


def _cured(targets: Targets) -> None:
    targets.mailbox.refuse_mailbox(POISONED_CUSTOMER, None)


def _pause(service: str, command: str) -> tuple[Callable[[Targets], None], Callable[[Targets], None]]:
    def pause(targets: Targets) -> None:
        if not targets.signal(service, command, signal.SIGSTOP):
            raise LookupError(f"no `{service} {command}` process is running here")

    def resume(targets: Targets) -> None:
        targets.signal(service, command, signal.SIGCONT)

    return pause, resume


FAULTS = {
    fault.name: fault
    for fault in (
        Fault("smtp-refusing", f"The mail server answers every email with {SMTP_BUSY[:3]}.", _refusing, _accepting),
        Fault("smtp-slow", f"The mail server takes {SMTP_SLOW_SECONDS:g} s to accept each email.", _slow, _fast),
        Fault("notifier-paused", "Every notifier process is frozen (SIGSTOP).", *_pause("notifier", "worker")),
        Fault("relay-paused", "Every orders relay process is frozen (SIGSTOP).", *_pause("orders", "relay")),
        Fault(
            "poison-messages",
            f"The mail server refuses {POISONED_CUSTOMER}'s mailbox for good ({SMTP_NO_SUCH_MAILBOX[:3]}): her orders"
            " are dead-lettered at once and hold up nobody else's.",
            _poisoned,
            _cured,
            parks_orders_of=POISONED_CUSTOMER,
        ),
    )
}
