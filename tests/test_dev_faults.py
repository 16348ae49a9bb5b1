"""`make fault` and `make dev`'s switchboard, short: the CLI switches a fault on and off and
prints the verdict; the Procfile's `faults` line starts a mail server and a switchboard."""

from __future__ import annotations

import asyncio
import os
import smtplib
import sys
from email.message import EmailMessage
from pathlib import Path

import aiohttp
from honcho.environ import parse_procfile

from harness.api import Customer
from harness.faults import FAULTS, POISONED_CUSTOMER
from harness.procfile import PROCFILE
from harness.stack import Stack
from harness.switchboard import Switchboard
from shared.testing import eventually, fetchval, free_port
from shared.testing.processes import ServiceProcess

TRIGGERS = "SELECT count(*) FROM pg_trigger WHERE tgname = $1"
# A bound against a hang: switching off waits for the orders taken meanwhile to drain.
CLI_TIMEOUT_SECONDS = 180


async def _make_fault(url: str, name: str, state: str) -> tuple[int, str]:
    """What `make fault NAME=… [off]` runs, and what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness.switchboard", "switch", name, state, "--url", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(CLI_TIMEOUT_SECONDS):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_make_fault_on_then_off_prints_a_verdict_of_nothing_lost_or_duplicated(
    stack: Stack, switchboard: Switchboard, faults_port: int
) -> None:
    url = f"http://127.0.0.1:{faults_port}"
    switched_on = await _make_fault(url, "smtp-refusing", "on")
    async with aiohttp.ClientSession() as http:
        customer = Customer(http, stack.gateway_url, await stack.token("alice"))
        for _ in range(3):
            await customer.place()
    emailed_while_refusing = stack.mailbox.count
    switched_off = await _make_fault(url, "smtp-refusing", "off")

    assert switched_on[0] == 0, switched_on[1]
    assert "fault on: smtp-refusing" in switched_on[1]
    assert emailed_while_refusing == 0
    assert switched_off[0] == 0, switched_off[1]
    assert "smtp-refusing: 3 orders accepted while it was on, 0 lost, 0 duplicated, drained in" in switched_off[1]


async def test_poison_parks_its_customers_orders_on_purpose_and_the_verdict_says_so_apart_from_lost(
    stack: Stack, switchboard: Switchboard, faults_port: int
) -> None:
    url = f"http://127.0.0.1:{faults_port}"
    assert (await _make_fault(url, "poison-messages", "on"))[0] == 0
    async with aiohttp.ClientSession() as http:
        for customer in (POISONED_CUSTOMER, "alice"):
            await Customer(http, stack.gateway_url, await stack.token(customer)).place()
    status, output = await _make_fault(url, "poison-messages", "off")

    assert status == 0, output
    assert "2 orders accepted while it was on, 0 lost, 0 duplicated, 1 dead-lettered on purpose, drained" in output


async def test_postgres_slow_for_a_while_loses_nothing_and_leaves_no_trace_in_the_schema(
    stack: Stack, switchboard: Switchboard, faults_port: int
) -> None:
    url = f"http://127.0.0.1:{faults_port}"
    assert (await _make_fault(url, "postgres-slow", "on"))[0] == 0
    slowed = await fetchval(stack.orders_database_url, TRIGGERS, "dozen_fault_slow")
    async with aiohttp.ClientSession() as http:
        customer = Customer(http, stack.gateway_url, await stack.token("alice"))
        for _ in range(3):
            await customer.place()
    status, output = await _make_fault(url, "postgres-slow", "off")

    assert slowed == 3  # orders, outbox, inbox
    assert status == 0, output
    assert "postgres-slow: 3 orders accepted while it was on, 0 lost, 0 duplicated, drained" in output
    for database_url in (stack.orders_database_url, stack.notifier_database_url):
        assert await fetchval(database_url, TRIGGERS, "dozen_fault_slow") == 0


async def test_make_fault_names_the_faults_when_asked_for_one_that_does_not_exist(faults_port: int) -> None:
    status, output = await _make_fault(f"http://127.0.0.1:{faults_port}", "no-such-fault", "on")

    assert status == 2
    assert all(name in output for name in FAULTS), output


async def test_the_procfiles_faults_line_serves_mail_and_the_switchboard(database_url: str) -> None:
    line = parse_procfile(PROCFILE.read_text()).processes["faults"]
    smtp_port, faults_port = free_port(), free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DEV_SMTP_PORT": str(smtp_port),
        "DEV_FAULTS_PORT": str(faults_port),
        "ORDERS_DATABASE_URL": database_url,
        "NOTIFIER_DATABASE_URL": database_url,
    }
    process = ServiceProcess(["bash", "-c", line], env=env)
    await process.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def listed() -> list[str] | None:
                try:
                    async with http.get(f"http://127.0.0.1:{faults_port}/faults") as answer:
                        return [fault["name"] for fault in (await answer.json())["faults"]]
                except aiohttp.ClientError:
                    assert process.returncode is None, f"the switchboard exited: {process.output()}"
                    return None

            faults = await eventually(listed, timeout_seconds=30, description="the switchboard answering")
        email = EmailMessage()
        email["From"], email["To"], email["Subject"] = "orders@dozen.test", "alice@dozen.test", "Your order"
        email["X-Dozen-Order-Id"] = "0b1c2d3e-0000-0000-0000-000000000000"
        await asyncio.to_thread(_send, smtp_port, email)
        await eventually(
            lambda: any("email accepted for order 0b1c2d3e" in line for line in process.lines),
            description="the mail server logging the email",
        )
    finally:
        await process.stop()

    assert faults == list(FAULTS)


def _send(port: int, email: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(email)
