"""The whole of Dozen as the runtime audit runs it: the release built from the Dockerfiles,
every process under observation, on scratch databases, private exchanges and queues and
SMTP sinks of the audit's own, against the servers the TEST_* URLs name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from audit.observe import ObservedProcess, Observer
from audit.release import Release, build_release, current_release_id
from harness.procfile import ProcessType, process_types
from harness.stack import Launch, Servers, Stack, running_stack
from shared.testing.backing_services import SERVER_URL_VARIABLES
from shared.testing.smtp import SmtpSink

SERVER_VARIABLES = tuple(SERVER_URL_VARIABLES.values())


class SystemUnavailable(RuntimeError):
    """The system could not be started: every runtime check fails with this reason."""


@dataclass
class AuditedSystem:
    root: Path
    release: Release
    observer: Observer
    stack: Stack

    def process(self, name: str) -> ObservedProcess:
        """The process running now as ``name`` (``orders-web``, ``notifier-2``, ...)."""
        process = self.stack.processes[name]
        if not isinstance(process, ObservedProcess):
            raise TypeError(f"{name} was not started under observation")
        return process

    @staticmethod
    def kind(name: str) -> ProcessType:
        """The process type of ``name`` (``orders-web``, ``notifier-2``, ...)."""
        return process_types()[name.rsplit("-", 1)[0] if name[-1].isdigit() else name]


def servers(environ: Mapping[str, str]) -> Servers:
    missing = [variable for variable in SERVER_VARIABLES if not environ.get(variable)]
    if missing:
        raise SystemUnavailable(
            f"set {', '.join(missing)}: the servers the audited system may create databases, queues and keys on"
        )
    return Servers(*(environ[variable] for variable in SERVER_VARIABLES))


def release_launcher(release: Release, observer: Observer) -> Launch:
    """Dozen's processes started from ``release``, each under ``observer``."""

    def launch(service: str, arguments: Sequence[str], env: Mapping[str, str]) -> ObservedProcess:
        build = release.builds[service]
        # The image's ENV first: run-time config overrides it, as `docker run -e` does.
        return observer.launch(service, build.executable, arguments, build.image_environment | dict(env))

    return launch


@asynccontextmanager
async def audited_system(root: Path, environ: Mapping[str, str], workdir: Path) -> AsyncIterator[AuditedSystem]:
    attached = servers(environ)
    release = build_release(root, workdir / "release", current_release_id(root, dict(environ)))
    observer = Observer(workdir)
    launch = release_launcher(release, observer)

    smtp = SmtpSink()
    smtp.start()
    try:
        async with running_stack(attached, label="audit", smtp=smtp, launch=launch) as stack:
            yield AuditedSystem(root, release, observer, stack)
    finally:
        smtp.stop()
