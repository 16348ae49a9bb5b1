"""Processes run under observation: every file they write (strace), the ports they listen
on (psutil) and everything they print, kept for the factor checks.

strace runs each process with a seccomp filter that stops it only on the system calls that
can write to a file system (opening for writing, creating, renaming, removing), so the cost
is small and nothing the process writes escapes the record, in any of its threads.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from shared.testing import ServiceProcess, eventually

WRITING_CALLS = (
    "open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,"
    "link,linkat,symlink,symlinkat,truncate,mknod,mknodat"
)
_OPENS = {"open", "openat", "openat2", "creat"}
_WRITE_FLAGS = re.compile(r"\bO_(?:WRONLY|RDWR|CREAT|TRUNC|APPEND)\b")
# strace -y prints a descriptor with its path: `3</tmp/x>`, AT_FDCWD with the working directory.
_CALL = re.compile(r"^(?P<call>\w+)\((?P<arguments>.*)\)\s+=\s+(?P<result>.*)$")
_NAMED_PATH = re.compile(r'(?:(?:AT_FDCWD|\d+)<(?P<directory>[^>]*)>, )?"(?P<path>(?:[^"\\]|\\.)*)"')
_OPENED = re.compile(r"^\d+<(?P<path>[^>]*)>$")


class ObservationUnavailable(RuntimeError):
    """strace is missing or may not trace here: what the processes write cannot be seen."""


@dataclass(frozen=True)
class FileWrite:
    call: str
    path: str


def file_writes(trace_lines: Sequence[str], cwd: Path) -> list[FileWrite]:
    """The writes an ``strace -y -z`` record shows, each with the absolute path it touched."""
    writes = []
    for line in trace_lines:
        match = _CALL.match(line.strip())
        if match is None:
            continue
        call, arguments = match["call"], match["arguments"]
        if call in _OPENS:
            if call != "creat" and not _WRITE_FLAGS.search(arguments):
                continue
            opened = _OPENED.match(match["result"])
            paths = [opened["path"]] if opened else _paths(arguments, cwd)[:1]
        else:
            paths = _paths(arguments, cwd)
        writes += [FileWrite(call, path) for path in paths]
    return writes


def _paths(arguments: str, cwd: Path) -> list[str]:
    found = []
    for match in _NAMED_PATH.finditer(arguments):
        path = Path(match["path"])
        if not path.is_absolute():
            path = Path(match["directory"] or cwd) / path
        found.append(os.path.normpath(path))
    return found


def changed_variables(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The variables two environments do not agree on."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def strace_prefix(record: Path) -> list[str]:
    strace = shutil.which("strace")
    if strace is None:
        raise ObservationUnavailable("strace is not on PATH (Debian: apt-get install strace; .ci/run installs it)")
    # -ff: one record per thread, so no call is split across lines; -z: successful calls only.
    return [
        strace,
        *("-ff", "-qq", "-z", "-y", "-s", "4096", "-e", "signal=none", "--seccomp-bpf"),
        *("-e", f"trace={WRITING_CALLS}", "-o", str(record), "--"),
    ]


class Observer:
    """Starts processes under observation, in a working directory of their own, and keeps
    every one it started — killed and replaced ones included — for the checks."""

    def __init__(self, workdir: Path) -> None:
        self.records = workdir / "traces"
        self.cwd = workdir / "cwd"
        self.records.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.processes: list[ObservedProcess] = []
        self._numbers = itertools.count(1)

    def launch(
        self, service: str, executable: Path, arguments: Sequence[str], env: Mapping[str, str]
    ) -> ObservedProcess:
        command = re.sub(r"[^\w.-]+", "_", Path(arguments[0]).name) if arguments else "run"
        name = f"{service}-{command}-{next(self._numbers)}"
        return ObservedProcess(self, name=name, service=service, executable=executable, arguments=arguments, env=env)


class ObservedProcess(ServiceProcess):
    """A ServiceProcess run under strace; signals and kills go to it, not to strace."""

    def __init__(
        self,
        observer: Observer,
        *,
        name: str,
        service: str,
        executable: Path,
        arguments: Sequence[str],
        env: Mapping[str, str],
    ) -> None:
        self.observer = observer
        self.name = name
        self.service = service
        self.executable = executable
        self.arguments = list(arguments)
        self._record = observer.records / name
        super().__init__([*strace_prefix(self._record), str(executable), *arguments], env=env, cwd=str(observer.cwd))
        self._traced: int | None = None

    @property
    def command(self) -> str:
        return self.arguments[0] if self.arguments else ""

    async def start(self) -> None:
        await super().start()
        self.observer.processes.append(self)
        self._traced = await eventually(self._traced_child, timeout_seconds=10, description=f"{self.name} traced")

    def _traced_child(self) -> int | None:
        """The process strace runs, once it runs our executable: strace first forks a
        short-lived child of its own (its seccomp check), which must not be mistaken for it."""
        try:
            children = psutil.Process(super().pid).children()
        except psutil.NoSuchProcess:
            raise ObservationUnavailable(f"strace exited at once: {self.output()}") from None
        for child in children:
            try:
                # A fork of strace shows strace's own command line, ours included: tell by the image.
                if child.exe() != self._argv[0] and str(self.executable) in child.cmdline():
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        return None

    @property
    def pid(self) -> int:
        if self._traced is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._traced

    def send_signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    async def stop(self) -> None:
        """Kill it if it still runs; strace then exits by itself, its record complete."""
        if self.returncode is None and self._traced is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            await self.wait(timeout_seconds=10)
        await super().stop()

    def twin(self, env: Mapping[str, str] | None = None) -> ObservedProcess:
        return self.observer.launch(self.service, self.executable, self.arguments, self.env | dict(env or {}))

    def file_writes(self) -> list[FileWrite]:
        lines = [line for record in self.observer.records.glob(f"{self._record.name}.*") for line in _read(record)]
        return file_writes(lines, self.observer.cwd)

    def listening_ports(self) -> set[int]:
        connections = psutil.Process(self.pid).net_connections(kind="inet")
        return {connection.laddr.port for connection in connections if connection.status == psutil.CONN_LISTEN}


def _read(record: Path) -> list[str]:
    return record.read_text(errors="replace").splitlines()
