"""Factor III as a check: an environment a deploy gives a process is exactly what its settings accept.

Shared by the compose and Kubernetes tests; the judge is the audit's (audit.deploys), so the
tests and `make audit` cannot disagree about what a valid configuration is.
"""

from __future__ import annotations

import pytest
from audit.deploys import PROCESS_SETTINGS, config_problems

from shared.config import ServiceSettings

__all__ = ["PROCESS_SETTINGS", "assert_environment_accepted"]


def assert_environment_accepted(settings_cls: type[ServiceSettings], environment: dict[str, str]) -> None:
    """The process would start: every required variable is there, valid, and none is unknown."""
    if problems := config_problems(settings_cls, environment):
        pytest.fail(f"{settings_cls.__module__}.{settings_cls.__name__}: {problems}")
