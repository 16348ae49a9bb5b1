"""Checks made on every process as it comes up: where it listens (VII) and which release
it says it runs (V)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from audit.runtime.findings import Findings
from audit.runtime.system import AuditedSystem
from harness.probes import build_info


def listens_where_told(listening: set[int], given: Mapping[str, int]) -> list[str]:
    """VII: the process listens on the ports its environment gives (variable: port), and on no other."""
    if listening == set(given.values()):
        return []
    told = ", ".join(f"{variable} {port}" for variable, port in given.items())
    return [f"listens on {sorted(listening) or 'nothing'}, but its environment gives it {told}"]


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
        kind = system.kind(name)
        variables = [variable for variable in (kind.port_variable, kind.management_variable) if variable]
        given = {variable: int(process.env[variable]) for variable in variables}
        findings.judge(
            "VII",
            process.service,
            (f"{name}: {problem}" for problem in listens_where_told(process.listening_ports(), given)),
            f"{name} (pid {process.pid}) listens on {' and '.join(map(str, given.values()))} only: "
            f"the ports {' and '.join(given)} give it",
        )
        labels = await build_info(given[variables[-1]])
        findings.judge(
            "V",
            process.service,
            (f"{name}: {problem}" for problem in names_the_release(labels, process.service, system.release.id)),
            f'{name}: dozen_build_info{{release="{system.release.id}"}}, run from {process.executable}',
        )
