"""The whole of Dozen as the runtime audit runs it: the release built from the Dockerfiles,
every process under observation, on scratch databases, private exchanges and queues and
SMTP sinks of the audit's own, against the servers the TEST_* URLs name."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from audit.observe import ObservedProcess, Observer
from audit.release import Release, build_release, current_release_id
from harness.procfile import process_types
from harness.stack import Launch, Stack, running_stack
from shared.testing.amqp import AmqpNames
from shared.testing.backing_services import SERVER_URL_VARIABLES
from shared.testing.databases import scratch_databases
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
    def port_variable(name: str) -> str:
        return process_types()[name.rsplit("-", 1)[0] if name[-1].isdigit() else name].port_variable


def server_urls(environ: Mapping[str, str]) -> tuple[str, str, str]:
    missing = [variable for variable in SERVER_VARIABLES if not environ.get(variable)]
    if missing:
        raise SystemUnavailable(
            f"set {', '.join(missing)}: the servers the audited system may create databases, queues and keys on"
        )
    database, amqp, redis = (environ[variable] for variable in SERVER_VARIABLES)
    return database, amqp, redis


def release_launcher(release: Release, observer: Observer) -> Launch:
    """Dozen's processes started from ``release``, each under ``observer``."""

    def launch(service: str, arguments: Sequence[str], env: Mapping[str, str]) -> ObservedProcess:
        build = release.builds[service]
        # The image's ENV first: run-time config overrides it, as `docker run -e` does.
        return observer.launch(service, build.executable, arguments, build.image_environment | dict(env))

    return launch


@asynccontextmanager
async def audited_system(root: Path, environ: Mapping[str, str], workdir: Path) -> AsyncIterator[AuditedSystem]:
    server_url, amqp_url, redis_url = server_urls(environ)
    release = build_release(root, workdir / "release", current_release_id(root, dict(environ)))
    observer = Observer(workdir)
    launch = release_launcher(release, observer)

    run = uuid.uuid4().hex[:8]
    names = AmqpNames(f"audit-{run}")
    smtp = SmtpSink()
    smtp.start()
    databases = [f"audit_{run}_{purpose}" for purpose in ("orders", "notifier")]
    try:
        async with (
            scratch_databases(server_url, databases) as (orders_url, notifier_url),
            running_stack(
                orders_database_url=orders_url,
                notifier_database_url=notifier_url,
                amqp_url=amqp_url,
                redis_url=redis_url,
                names=names,
                smtp=smtp,
                launch=launch,
            ) as stack,
        ):
            yield AuditedSystem(root, release, observer, stack)
    finally:
        smtp.stop()
        await names.delete_all(amqp_url)
