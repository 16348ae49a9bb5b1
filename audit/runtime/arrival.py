"""Checks made on every process as it comes up: where it listens (VII) and which release
it says it runs (V)."""

from __future__ import annotations

from collections.abc import Iterable

from audit.runtime.findings import Findings
from audit.runtime.system import AuditedSystem
from harness.probes import build_info


def listens_where_told(listening: set[int], variable: str, given: int) -> list[str]:
    """VII: the process listens on the port its environment gives, and on no other."""
    if listening == {given}:
        return []
    return [f"listens on {sorted(listening) or 'nothing'}, but {variable} gives it {given}"]


def names_the_release(labels: dict[str, str] | None, service: str, release_id: str) -> list[str]:
    """V: dozen_build_info names the service and the release it was built as."""
    if labels is None:
        return ["exposes no dozen_build_info"]
    expected = {"service": service, "release": release_id}
    wrong = {name: labels.get(name) for name, value in expected.items() if labels.get(name) != value}
    return [f"dozen_build_info says {wrong}, the release is {expected}"] if wrong else []


async def check_arrivals(system: AuditedSystem, findings: Findings, names: Iterable[str]) -> None:
    for name in names:
        process = system.process(name)
        variable = system.port_variable(name)
        given = int(process.env[variable])
        findings.judge(
            "VII",
            process.service,
            (f"{name}: {problem}" for problem in listens_where_told(process.listening_ports(), variable, given)),
            f"{name} (pid {process.pid}) listens on {given} only: the port {variable} gives it",
        )
        labels = await build_info(given)
        findings.judge(
            "V",
            process.service,
            (f"{name}: {problem}" for problem in names_the_release(labels, process.service, system.release.id)),
            f'{name}: dozen_build_info{{release="{system.release.id}"}}, run from {process.executable}',
        )
