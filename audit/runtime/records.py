"""What every process left behind, judged once all of them are down: the files it wrote
(strace saw every one) and what it printed.

- V: no process writes into its own install (the release is immutable once built);
- VI: no process writes anywhere but temporary directories (its state lives elsewhere);
- XI: logs are an event stream: on stdout, one JSON object per line, nothing on stderr,
  and no file opened for writing at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from audit.observe import FileWrite, ObservedProcess
from audit.release import Release
from audit.runtime.findings import Findings

TEMPORARY = tuple(sorted({"/tmp", "/var/tmp", os.environ.get("TMPDIR", "/tmp")}))  # noqa: S108 - where temp files belong
# Writing to a device (/dev/null, a terminal) writes no file.
DEVICES = "/dev"
LOG_FIELDS = ("timestamp", "level", "message", "service", "release")
# Commands whose stdout is their output (a token, listed dead letters), not a log stream.
COMMAND_OUTPUT = {"issue-token", "dlq", "outbox"}


def _under(path: str, directory: str | Path) -> bool:
    return Path(path).is_relative_to(directory)


def writes_into(writes: Iterable[FileWrite], install: Path) -> list[str]:
    """V: writes into the process's own install."""
    return sorted({f"{write.call} {write.path}" for write in writes if _under(write.path, install)})


def writes_outside_temporary(writes: Iterable[FileWrite]) -> list[str]:
    """VI: writes anywhere but a temporary directory or a device."""
    return sorted(
        {
            f"{write.call} {write.path}"
            for write in writes
            if not any(_under(write.path, directory) for directory in (*TEMPORARY, DEVICES))
        }
    )


def files_written(writes: Iterable[FileWrite]) -> list[str]:
    """XI: any file opened for writing (a log file, wherever it is)."""
    return sorted({f"{write.call} {write.path}" for write in writes if not _under(write.path, DEVICES)})


def log_problems(stdout: Sequence[str], stderr: Sequence[str], release_id: str) -> list[str]:
    """XI: every stdout line one JSON object naming its service and release; stderr empty."""
    problems = []
    for number, line in enumerate(stdout, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"stdout line {number} is not JSON: {line[:80]!r}")
            continue
        if not isinstance(record, dict):
            problems.append(f"stdout line {number} is not a JSON object: {line[:80]!r}")
            continue
        missing = [name for name in LOG_FIELDS if name not in record]
        if missing:
            problems.append(f"stdout line {number} lacks {missing}: {line[:80]!r}")
        elif record["release"] != release_id:
            problems.append(f"stdout line {number} names release {record['release']!r}, not {release_id!r}")
        if len(problems) >= 3:
            break
    if stderr:
        problems.append(f"{len(stderr)} lines on stderr, first: {stderr[0][:120]!r}")
    return problems


def judge_records(processes: Sequence[ObservedProcess], release: Release, findings: Findings) -> None:
    for service in sorted({process.service for process in processes}):
        mine = [process for process in processes if process.service == service]
        install = release.builds[service].install
        problems: dict[str, list[str]] = {"V": [], "VI": [], "XI": []}
        lines = writes = 0
        for process in mine:
            stdout = process.lines if process.command not in COMMAND_OUTPUT else []
            lines += len(stdout)
            written = process.file_writes()
            writes += len(written)
            problems["XI"] += [
                f"{process.name}: {problem}" for problem in log_problems(stdout, process.stderr_lines, release.id)
            ]
            problems["XI"] += [f"{process.name} wrote a file: {problem}" for problem in files_written(written)]
            problems["V"] += [
                f"{process.name} wrote into its install: {problem}" for problem in writes_into(written, install)
            ]
            problems["VI"] += [
                f"{process.name} wrote outside temporary directories: {problem}"
                for problem in writes_outside_temporary(written)
            ]
        commands = ", ".join(sorted({" ".join(process.arguments[:2]) for process in mine}))
        findings.judge(
            "XI",
            service,
            problems["XI"],
            f"{len(mine)} processes ({commands}): {lines} log lines on stdout, each one JSON object with "
            f"{', '.join(LOG_FIELDS)}; nothing on stderr; no file opened for writing ({writes} writes, strace)",
        )
        findings.judge("V", service, problems["V"], f"no process wrote into its install, {install}")
        findings.judge(
            "VI",
            service,
            problems["VI"],
            f"no process wrote outside {', '.join(TEMPORARY)} ({len(mine)} processes, strace)",
        )
