"""Factor III as a check: an environment a deploy gives a process is exactly what its settings accept.

Shared by the compose and Kubernetes tests: both hand each process type an environment, and
the service's own settings class (the one its ``main()`` loads) is the judge.
"""

from __future__ import annotations

import os

import pytest

from gateway.settings import WebSettings as GatewayWeb
from notifier.settings import DatabaseSettings as NotifierDatabase
from notifier.settings import WorkerSettings as NotifierWorker
from orders.settings import OrdersSettings
from orders.settings import RelaySettings as OrdersRelay
from orders.settings import WebSettings as OrdersWeb
from orders.settings import WorkerSettings as OrdersWorker
from shared.config import ConfigError, ServiceSettings, read_settings

# (service, command) -> the settings class that command loads.
PROCESS_SETTINGS: dict[tuple[str, str], type[ServiceSettings]] = {
    ("gateway", "web"): GatewayWeb,
    ("orders", "web"): OrdersWeb,
    ("orders", "relay"): OrdersRelay,
    ("orders", "worker"): OrdersWorker,
    ("orders", "migrate"): OrdersSettings,
    ("notifier", "worker"): NotifierWorker,
    ("notifier", "migrate"): NotifierDatabase,
}


def assert_environment_accepted(
    monkeypatch: pytest.MonkeyPatch, settings_cls: type[ServiceSettings], environment: dict[str, str]
) -> None:
    """The process would start: every required variable is there, valid, and none is unknown."""
    prefix = settings_cls.env_prefix()
    with monkeypatch.context() as patch:
        for variable in [name for name in os.environ if name.startswith(prefix)]:
            patch.delenv(variable)
        for variable, value in environment.items():
            patch.setenv(variable, value)
        try:
            read_settings(settings_cls)
        except ConfigError as error:
            pytest.fail(f"{settings_cls.__module__}.{settings_cls.__name__}: {error.problems}")
