"""Real OS processes for end-to-end tests: started, read, signalled, and always reaped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from shared.testing.polling import eventually


class ServiceProcess:
    """A child process whose stdout is read line by line, as JSON log records where it parses."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None = None) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        """The environment it was given (a one-off admin command runs with the same)."""
        return dict(self._env)

    @property
    def records(self) -> list[dict[str, Any]]:
        parsed = []
        for line in self.lines:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                parsed.append({"unparsed": line})
        return parsed

    async def start(self) -> None:
        # Only what the test passes, plus PATH: the process must need nothing else (factor III).
        env = {"PATH": os.environ.get("PATH", ""), **self._env}
        self._process = await asyncio.create_subprocess_exec(
            *self._argv, env=env, cwd=self._cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        # Both pipes are drained all along, so a chatty child never blocks on a full pipe.
        self._readers = [
            asyncio.create_task(self._drain(self._process.stdout, self.lines)),
            asyncio.create_task(self._drain(self._process.stderr, self.stderr_lines)),
        ]

    @staticmethod
    async def _drain(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
        assert stream is not None
        async for line in stream:
            sink.append(line.decode(errors="replace").rstrip("\n"))

    async def wait_for_log(self, message: str, *, timeout_seconds: float = 10.0) -> dict[str, Any]:
        async def logged() -> dict[str, Any] | None:
            if self.returncode is not None:
                raise AssertionError(f"process exited {self.returncode} before logging {message!r}: {self.output()}")
            return next((record for record in self.records if record.get("message") == message), None)

        return await eventually(logged, timeout_seconds=timeout_seconds, description=f"log line {message!r}")

    def send_signal(self, signum: signal.Signals) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def wait(self, timeout_seconds: float) -> int:
        assert self._process is not None
        async with asyncio.timeout(timeout_seconds):
            code = await self._process.wait()
            await asyncio.gather(*self._readers)
        return code

    async def stop(self) -> None:
        """Kill if still running; for test teardown."""
        if self._process is None or self._process.returncode is not None:
            return
        self._process.kill()
        await self.wait(timeout_seconds=10)

    def twin(self, env: Mapping[str, str] | None = None) -> ServiceProcess:
        """A new, unstarted process with the same command and environment (plus ``env``):
        a restart, or another instance."""
        return ServiceProcess(self._argv, env=self._env | dict(env or {}), cwd=self._cwd)

    def output(self) -> str:
        return "\n".join(self.lines[-20:] + self.stderr_lines[-20:])
