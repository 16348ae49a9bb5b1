"""The runtime checks of `make audit` can fail: each is fed a real process, run under the
audit's own observation (strace, psutil), that breaks its factor — and one that does not,
so a check that always said FAIL would be caught too."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest
from audit.deploys import ROOT
from audit.observe import ObservedProcess, Observer
from audit.release import Release, ServiceBuild
from audit.runtime.arrival import listens_where_told, names_the_release
from audit.runtime.disposability import judge_starts, judge_stop, started_until_ready
from audit.runtime.findings import Findings
from audit.runtime.records import TEMPORARY, judge_records
from audit.scorecard import Verdict

from harness.inflight import InFlight, graceful_stop
from harness.probes import build_info, tapped
from shared.messaging import declare_event_exchange
from shared.testing import ServiceProcess, eventually, free_port
from shared.testing.amqp import AmqpNames

TOY = Path(__file__).with_name("audit_toy.py")
PYTHON = Path(sys.executable)


@pytest.fixture
def observer(tmp_path: Path) -> Observer:
    return Observer(tmp_path / "observed")


@pytest.fixture
def outside_temporary() -> Iterator[Path]:
    """A directory that is no temporary one (the checkout itself may be in /tmp, as CI's is)."""
    candidates = [Path.home() / ".cache", ROOT / "reports"]
    parent = next((path for path in candidates if not any(path.is_relative_to(tmp) for tmp in TEMPORARY)), None)
    if parent is None:
        pytest.fail(f"no directory outside {TEMPORARY} to write to among {candidates}")
    directory = parent / f"dozen-audit-test-{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True)
    yield directory
    shutil.rmtree(directory)


def toy(observer: Observer, *flags: str, env: dict[str, str] | None = None) -> tuple[ObservedProcess, int]:
    port = free_port()
    process = observer.launch("toy", PYTHON, [str(TOY), "serve", *flags], {"TOY_PORT": str(port), **(env or {})})
    return process, port


@pytest.fixture
async def running() -> AsyncIterator[list[ServiceProcess]]:
    """Processes a test started; killed afterwards whatever happened."""
    started: list[ServiceProcess] = []
    yield started
    for process in started:
        await process.stop()


async def start(running: list[ServiceProcess], process: ObservedProcess, port: int) -> float:
    running.append(process)
    return await started_until_ready(process, port)


def by_factor(verdicts: list[Verdict]) -> dict[str, Verdict]:
    return {found.factor: found for found in verdicts}


async def test_vii_fails_for_a_process_listening_on_a_port_its_environment_did_not_give(
    observer: Observer, running: list[ServiceProcess]
) -> None:
    extra = free_port()
    well, well_port = toy(observer)
    badly, port = toy(observer, "--also-listen", str(extra))
    await start(running, well, well_port)
    await start(running, badly, port)

    assert listens_where_told(well.listening_ports(), {"TOY_PORT": well_port}) == []
    assert listens_where_told(badly.listening_ports(), {"TOY_PORT": port}) == [
        f"listens on {sorted([port, extra])}, but its environment gives it TOY_PORT {port}"
    ]
    assert listens_where_told(badly.listening_ports(), {"TOY_PORT": port, "TOY_MANAGEMENT_PORT": extra}) == []


async def test_v_fails_when_build_info_names_another_release(observer: Observer, running: list[ServiceProcess]) -> None:
    process, port = toy(observer, "--release", "an-old-build")
    await start(running, process, port)

    assert names_the_release(await build_info(port), "toy", "an-old-build") == []
    assert names_the_release(await build_info(port), "toy", "the-release") == [
        "dozen_build_info says {'release': 'an-old-build'}, the release is {'service': 'toy', 'release': 'the-release'}"
    ]


async def test_v_vi_xi_fail_for_writes_and_logs_that_break_them(
    observer: Observer, running: list[ServiceProcess], tmp_path: Path, outside_temporary: Path
) -> None:
    install = tmp_path / "install"
    install.mkdir()
    release = Release("toy-release", "lock", {"toy": ServiceBuild("toy", install, {})})
    clean, clean_port = toy(observer)
    await start(running, clean, clean_port)
    clean.send_signal(signal.SIGTERM)
    assert await clean.wait(timeout_seconds=10) == 0
    passed = Findings()
    judge_records([clean], release, passed)
    assert all(found.passed for found in passed.verdicts(["V", "VI", "XI"], ["toy"])), passed.verdicts(
        ["V", "VI", "XI"], ["toy"]
    )

    messy, port = toy(
        observer,
        *("--write", str(install / "patched.py")),
        *("--write", str(outside_temporary / "state.db")),
        *("--write", str(tmp_path / "toy.log")),
        "--plain-log",
        "--stderr",
    )
    await start(running, messy, port)
    await messy.stop()
    failed = Findings()
    judge_records([messy], release, failed)
    verdicts = by_factor(failed.verdicts(["V", "VI", "XI"], ["toy"]))

    assert not verdicts["V"].passed
    assert any(f"wrote into its install: openat {install}/patched.py" in line for line in verdicts["V"].evidence)
    assert not verdicts["VI"].passed
    # The install and the log file are under /tmp here: only the state file is outside it.
    assert [line for line in verdicts["VI"].evidence if "outside temporary" in line] == [
        f"{messy.name} wrote outside temporary directories: openat {outside_temporary}/state.db"
    ]
    assert not verdicts["XI"].passed
    xi = "\n".join(verdicts["XI"].evidence)
    assert "stdout line 1 is not JSON" in xi
    assert "1 lines on stderr, first: 'a warning on stderr'" in xi
    assert f"wrote a file: openat {tmp_path}/toy.log" in xi


async def test_ix_fails_for_a_slow_start_a_deaf_process_and_work_dropped_on_sigterm(
    observer: Observer, running: list[ServiceProcess]
) -> None:
    # A start can only be slower on a busy machine, never faster than the toy's own wait: a
    # limit under that wait fails whatever the load. (make audit's own limit is ten seconds.)
    slow, port = toy(observer, "--ready-after", "1.5")
    [problem] = judge_starts([await start(running, slow, port)], limit_seconds=1.0)
    assert re.fullmatch(r"ready \d+\.\d\d s after start \(median of \d+\.\d\d; at most 1 s\)", problem), problem

    deaf, port = toy(observer, "--ignore-sigterm")
    assert judge_starts([await start(running, deaf, port)]) == []
    stop = await graceful_stop(deaf, None, deadline_seconds=2)
    assert judge_stop(stop) == [f"still running {stop.seconds:.1f} s after SIGTERM: killed"]

    for flags, expected in (((), []), (("--drop-in-flight",), ["the requests in flight got"])):
        process, port = toy(observer, *flags)
        await start(running, process, port)
        stop = await graceful_stop(process, await _held_requests(process, port, 3))
        problems = judge_stop(stop)
        if expected:
            assert problems, stop
            assert problems[0].startswith(expected[0]), problems
        else:
            assert problems == [], problems


async def _held_requests(process: ServiceProcess, port: int, count: int) -> InFlight:
    """``count`` POST /work requests, held by the toy until it gets SIGUSR1."""
    url = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def one() -> int:
        async with session.post(f"{url}/work") as answer:
            return answer.status

    requests = [asyncio.create_task(one()) for _ in range(count)]

    async def started() -> int | None:
        async with session.get(f"{url}/in-flight") as answer:
            waiting = int((await answer.json())["in_flight"])
        return waiting if waiting == count else None

    async def release() -> None:
        with contextlib.suppress(ProcessLookupError):  # the toy that drops its work is gone
            process.send_signal(signal.SIGUSR1)

    async def finished() -> list[str]:
        outcomes = await asyncio.gather(*requests, return_exceptions=True)
        await session.close()
        statuses = Counter(outcome if isinstance(outcome, int) else type(outcome).__name__ for outcome in outcomes)
        return [] if statuses == Counter({200: count}) else [f"the requests in flight got {dict(statuses)}"]

    return InFlight(f"{count} requests", started, release, finished)


async def test_the_tap_counts_an_event_that_crosses_the_exchange_twice_twice(
    amqp_url: str, amqp_names: AmqpNames
) -> None:
    """VIII is proved by tests/test_scale_out.py, with this tap as its instrument."""
    exchange = amqp_names("toy.events")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await declare_event_exchange(await connection.channel(), exchange)
    async with tapped(amqp_url, [exchange]) as tap:
        double = ServiceProcess([str(PYTHON), str(TOY), "publish", amqp_url, exchange, "order-1"], env={})
        await double.start()
        assert await double.wait(timeout_seconds=30) == 0, double.output()
        await eventually(lambda: tap.times("toy.event.v1", "order-1") == 2, description="both copies tapped")

    assert tap.subjects("toy.event.v1") == Counter({"order-1": 2})
