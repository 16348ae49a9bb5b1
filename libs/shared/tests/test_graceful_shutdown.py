"""SIGTERM on a real process: readiness goes red, in-flight work finishes, resources close, exit 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from shared.testing import ServiceProcess, eventually, free_port, wait_until_ready

SAMPLE = str(Path(__file__).with_name("sample_service.py"))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def start(env: dict[str, str]) -> ServiceProcess:
    process = ServiceProcess([sys.executable, SAMPLE], env=env)
    await process.start()
    await process.wait_for_log("listening")
    return process


async def readiness_status(http: aiohttp.ClientSession, port: int) -> int:
    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status


async def test_sigterm_drains_finishes_in_flight_work_and_exits_zero(http: aiohttp.ClientSession) -> None:
    port = free_port()
    process = await start(
        {"SAMPLE_PORT": str(port), "SAMPLE_WORK_SECONDS": "1.5", "SAMPLE_SHUTDOWN_DRAIN_SECONDS": "1"}
    )
    try:
        assert await readiness_status(http, port) == 200
        in_flight = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/slow"))
        await process.wait_for_log("slow request started")

        process.send_signal(signal.SIGTERM)

        async def not_ready() -> bool:
            return await readiness_status(http, port) == 503

        await eventually(not_ready, timeout_seconds=1, description="readiness 503 while draining")
        response = await in_flight
        assert response.status == 200
        assert await response.json() == {"finished": True}
        assert await process.wait(timeout_seconds=10) == 0
    finally:
        await process.stop()
    messages = [record.get("message") for record in process.records]
    assert messages.index("shutdown requested") < messages.index("resource closed") < messages.index("stopped")
    assert process.stderr_lines == []


async def test_work_past_the_shutdown_timeout_is_cut_and_the_process_still_exits_zero(
    http: aiohttp.ClientSession,
) -> None:
    port = free_port()
    process = await start(
        {"SAMPLE_PORT": str(port), "SAMPLE_WORK_SECONDS": "60", "SAMPLE_SHUTDOWN_TIMEOUT_SECONDS": "0.5"}
    )
    try:
        in_flight = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/slow"))
        await process.wait_for_log("slow request started")

        process.send_signal(signal.SIGTERM)

        # The bound is the hang guard: 0.5 s of grace, far below the handler's 60 s.
        assert await process.wait(timeout_seconds=10) == 0
        with pytest.raises(aiohttp.ClientError):
            await in_flight
    finally:
        await process.stop()
    assert "resource closed" in [record.get("message") for record in process.records]


async def test_empty_environment_lists_every_missing_variable_and_exits_78() -> None:
    process = ServiceProcess([sys.executable, SAMPLE], env={})
    await process.start()

    assert await process.wait(timeout_seconds=10) == 78
    assert process.stderr_lines[0] == "config error: SAMPLE_PORT: required but not set"
    assert not any("Traceback" in line for line in process.stderr_lines)


async def test_a_process_that_cannot_start_is_reported_in_its_own_words() -> None:
    # The harness must say why, not only "not ready": a bad setting exits 78 at once.
    port = free_port()
    process = ServiceProcess([sys.executable, SAMPLE], env={"SAMPLE_PORT": str(port), "SAMPLE_WORK_SECONDS": "-1"})
    await process.start()
    try:
        with pytest.raises(AssertionError) as failure:
            await wait_until_ready(port, what="sample", process=process)
        assert "sample exited 78 before it was ready" in str(failure.value)
        assert "config error: SAMPLE_WORK_SECONDS" in str(failure.value)
    finally:
        await process.stop()


async def test_a_process_never_ready_is_reported_with_what_it_printed() -> None:
    # Listening on another port than the harness polls: alive, but never ready there.
    listening, polled = free_port(), free_port()
    process = ServiceProcess([sys.executable, SAMPLE], env={"SAMPLE_PORT": str(listening)})
    await process.start()
    try:
        await process.wait_for_log("listening")
        with pytest.raises(AssertionError) as failure:
            await wait_until_ready(polled, what="sample", process=process, timeout_seconds=0.5)
        assert "sample ready not met within 0.5 s" in str(failure.value)
        assert '"listening"' in str(failure.value)
    finally:
        await process.stop()


async def test_a_loop_that_dies_stops_its_process_gracefully_with_exit_1_and_says_why() -> None:
    process = await start({"SAMPLE_PORT": str(free_port()), "SAMPLE_LOOP_BREAKS": "true"})
    try:
        assert await process.wait(timeout_seconds=30) == 1
    finally:
        await process.stop()
    [died] = [
        record for record in process.records if record.get("message") == "background loop ended; stopping the process"
    ]
    assert died["task"] == "sample-loop"
    assert "RuntimeError: the loop broke" in died["exc_info"]
    messages = [record.get("message") for record in process.records]
    assert messages.index("shutdown requested") < messages.index("resource closed") < messages.index("stopped")
