"""V as written: build, release and run kept apart by each service's Dockerfile, read as
Docker reads it (dockerfile-parse). The release id is baked into the image — as the label
dev.dozen.release-id and as the variable build_info reads — the run stage takes the built
virtualenv and nothing else (no source to edit in place), and no config is baked in: the
only variable of the service's own the image sets is its release id. (The running
release's build_info and its untouched install are checked in runtime/.)"""

from __future__ import annotations

from pathlib import Path

from dockerfile_parse import DockerfileParser

from audit.deploys import PROCESS_SETTINGS, SERVICES
from audit.scorecard import Verdict, verdict

RELEASE_LABEL = "dev.dozen.release-id"
# A release id no Dockerfile could contain by chance: it must come from the build argument.
PROBE = "audit-probe-release"


def image_problems(dockerfile: Path, service: str) -> list[str]:
    parsed = DockerfileParser(str(dockerfile), build_args={"RELEASE_ID": PROBE})
    problems = []
    release_variable = f"{service.upper()}_RELEASE_ID"
    if parsed.labels.get(RELEASE_LABEL) != PROBE:
        problems.append(f"no {RELEASE_LABEL} label from the RELEASE_ID build argument")
    if parsed.envs.get(release_variable) != PROBE:
        problems.append(f"{release_variable} is not set from the RELEASE_ID build argument")
    service_variables = set().union(
        *(cls.service_variables() for (owner, _), cls in PROCESS_SETTINGS.items() if owner == service)
    )
    baked = sorted((set(parsed.envs) & service_variables) - {release_variable})
    if baked:
        problems.append(f"config baked into the image: {baked}")
    run_stage = stages(parsed)[-1]
    copies = [value for instruction, value in run_stage if instruction in {"COPY", "ADD"}]
    from_build = [value for value in copies if value.startswith("--from=")]
    if not from_build or len(from_build) != len(copies):
        problems.append(f"the run stage copies more than the build's output: {copies}")
    return problems


def stages(parsed: DockerfileParser) -> list[list[tuple[str, str]]]:
    """The instructions of each stage, in order: (INSTRUCTION, value)."""
    found: list[list[tuple[str, str]]] = []
    for instruction in parsed.structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        elif found:
            found[-1].append((instruction["instruction"], instruction["value"]))
    return found


def build_release_run(root: Path) -> list[Verdict]:
    verdicts = []
    for service in SERVICES:
        dockerfile = root / "services" / service / "Dockerfile"
        verdicts.append(
            verdict(
                "V",
                service,
                [f"services/{service}/Dockerfile: {problem}" for problem in image_problems(dockerfile, service)],
                [
                    f"services/{service}/Dockerfile: RELEASE_ID becomes the label {RELEASE_LABEL} and "
                    f"{service.upper()}_RELEASE_ID; the run stage copies only the built virtualenv; no config baked in"
                ],
            )
        )
    return verdicts
