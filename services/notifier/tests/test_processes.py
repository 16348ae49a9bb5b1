"""The notifier's process types and one-off commands as real OS processes."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection

from shared.testing import ServiceProcess, drain, eventually, fetchval, free_port, wait_until_ready
from shared.testing.smtp import SmtpSink

from .support import (
    NOTIFIER_SCRIPT,
    Names,
    notification_sent_probe,
    order_created,
    orders_publisher,
    publish_event,
)


def environment(database_url: str, amqp_url: str, smtp_url: str, names: Names, **extra: str) -> dict[str, str]:
    return {
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_AMQP_URL": amqp_url,
        "NOTIFIER_SMTP_URL": smtp_url,
        "NOTIFIER_QUEUE": names.queue,
        "NOTIFIER_ORDERS_EXCHANGE": names.orders_exchange,
        "NOTIFIER_EVENTS_EXCHANGE": names.events_exchange,
        **extra,
    }


async def one_off(env: dict[str, str], *command: str) -> ServiceProcess:
    process = ServiceProcess([NOTIFIER_SCRIPT, *command], env=env)
    await process.start()
    assert await process.wait(timeout_seconds=30) == 0, process.output()
    return process


async def test_migrate_creates_the_database_and_a_second_run_applies_nothing(
    postgres_server_url: str, new_database: Any
) -> None:
    url = await new_database()
    await fetchval(postgres_server_url, f'DROP DATABASE "{url.rsplit("/", 1)[1]}"')  # gone: migrate must create it

    first = await one_off({"NOTIFIER_DATABASE_URL": url}, "migrate", "--create-database")
    second = await one_off({"NOTIFIER_DATABASE_URL": url}, "migrate", "--create-database")

    [done_first] = [r for r in first.records if r.get("message") == "migrations done"]
    [done_second] = [r for r in second.records if r.get("message") == "migrations done"]
    assert done_first["applied"] == ["0001_notifications"]
    assert done_second["applied"] == []


async def test_worker_starts_answers_readyz_and_exits_zero_on_sigterm(
    notifier_database_url: str, amqp_url: str, smtp_sink: SmtpSink, names: Names
) -> None:
    port = free_port()
    env = environment(notifier_database_url, amqp_url, smtp_sink.url, names, NOTIFIER_PORT=str(port))
    process = ServiceProcess([NOTIFIER_SCRIPT, "worker"], env=env)
    await process.start()
    try:
        await wait_until_ready(port, what="notifier worker", process=process)
        process.send_signal(signal.SIGTERM)
        assert await process.wait(timeout_seconds=20) == 0, process.output()
    finally:
        await process.stop()
    assert process.records[-1]["message"] == "stopped"


async def test_dead_letters_are_listed_and_replayed_after_the_fix(
    notifier_database_url: str,
    amqp_url: str,
    smtp_sink: SmtpSink,
    names: Names,
    amqp: AbstractRobustConnection,
) -> None:
    probe = await notification_sent_probe(amqp, names)
    port = free_port()
    env = environment(
        notifier_database_url,
        amqp_url,
        smtp_sink.url,
        names,
        NOTIFIER_PORT=str(port),
        NOTIFIER_MAX_ATTEMPTS="2",
        NOTIFIER_FIRST_BACKOFF_SECONDS="0.01",
        NOTIFIER_MAX_BACKOFF_SECONDS="0.02",
    )
    worker = ServiceProcess([NOTIFIER_SCRIPT, "worker"], env=env)
    await worker.start()
    try:
        await wait_until_ready(port, what="notifier worker", process=worker)
        smtp_sink.refuse_all()
        events = [order_created("alice"), order_created("bob")]
        for event in events:
            await publish_event(await orders_publisher(amqp, names), event)

        async def listed() -> list[dict[str, Any]]:
            process = await one_off(env, "dlq", "list")
            return [json.loads(line)["dead_letter"] for line in process.lines if '"dead_letter"' in line]

        dead = await eventually(lambda: _both(listed), description="both dead-lettered")
        assert {entry["message_id"] for entry in dead} == {str(event.id) for event in events}
        assert all(str(entry["reason"]).startswith("failed 2 times, last: SMTP") for entry in dead)
        assert await listed() == dead, "listing must not remove anything"

        smtp_sink.refuse_all(None)
        replay = await one_off(env, "dlq", "replay")
        [done] = [record for record in replay.records if record.get("message") == "replay done"]
        assert done["replayed"] == 2

        await eventually(lambda: len(smtp_sink.received()) == 2, description="both emails sent after the replay")
        assert await listed() == []
        sent = []

        async def both_published() -> bool:
            sent.extend(await drain(probe))
            return len(sent) == 2

        await eventually(both_published, description="NotificationSent for both")
        assert await fetchval(notifier_database_url, "SELECT count(*) FROM notifications") == 2
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait(timeout_seconds=20)
        await worker.stop()


async def _both(listed: Any) -> list[dict[str, Any]] | None:
    entries: list[dict[str, Any]] = await listed()
    return entries if len(entries) == 2 else None


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (["migrate"], ["NOTIFIER_DATABASE_URL"]),
        (["worker"], ["NOTIFIER_DATABASE_URL", "NOTIFIER_AMQP_URL", "NOTIFIER_PORT", "NOTIFIER_SMTP_URL"]),
        (["dlq", "list"], ["NOTIFIER_AMQP_URL"]),
        (["dlq", "replay"], ["NOTIFIER_AMQP_URL"]),
    ],
)
async def test_empty_environment_lists_every_missing_variable_and_exits_78(
    command: list[str], missing: list[str]
) -> None:
    process = ServiceProcess([NOTIFIER_SCRIPT, *command], env={})
    await process.start()

    assert await process.wait(timeout_seconds=30) == 78
    assert sorted(process.stderr_lines[:-1]) == sorted(
        f"config error: {name}: required but not set" for name in missing
    )


@pytest.mark.parametrize("command", [["dlq", "list"], ["dlq", "replay"]])
async def test_a_missing_dead_letter_queue_is_one_clear_line_not_a_traceback(
    amqp_url: str, names: Names, command: list[str]
) -> None:
    queue = names.queue  # no worker ever declared it, nor its dead-letter queue
    process = ServiceProcess([NOTIFIER_SCRIPT, *command], env={"NOTIFIER_AMQP_URL": amqp_url, "NOTIFIER_QUEUE": queue})
    await process.start()

    assert await process.wait(timeout_seconds=30) == 1
    assert [record["message"] for record in process.records if record.get("level") == "error"] == [
        f"no dead-letter queue '{queue}.dlq': is NOTIFIER_QUEUE right, and has the worker run once?"
    ]
    assert not any("Traceback" in line for line in process.stderr_lines)
