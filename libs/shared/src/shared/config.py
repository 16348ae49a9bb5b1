"""Settings read only from the environment (factor III), and the exit-78 contract for bad config.

A service declares its settings as a subclass of :class:`ServiceSettings` with its
own ``env_prefix``; only its ``main()`` calls :func:`load_settings`. Backing-service
URLs, ports and secrets are declared without defaults, so a deploy that forgets one
fails at start, loudly, instead of quietly talking to the wrong place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared import telemetry

# Kubernetes kills a pod 30 s after SIGTERM by default; draining plus finishing
# in-flight work must fit well inside that, with room for closing pools.
MAX_SHUTDOWN_BUDGET_SECONDS = 25.0

Port = Annotated[int, Field(ge=1, le=65535)]


def _require_url(*schemes: str) -> AfterValidator:
    def check(value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in schemes or not parts.hostname:
            # The message must never echo the value: URLs carry passwords.
            raise ValueError(f"must be a URL of scheme {' or '.join(schemes)} with a host")
        return value

    return AfterValidator(check)


# URLs of backing services are secrets: they usually embed credentials.
PostgresUrl = Annotated[SecretStr, _require_url("postgresql", "postgres")]
AmqpUrl = Annotated[SecretStr, _require_url("amqp", "amqps")]
HttpUrl = Annotated[SecretStr, _require_url("http", "https")]
SmtpUrl = Annotated[SecretStr, _require_url("smtp", "smtps")]
RedisUrl = Annotated[SecretStr, _require_url("redis", "rediss")]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ServiceSettings(BaseSettings):
    """What every process of every service can be told; subclasses add their own and a prefix."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    # The name the service reports in logs, metrics and traces; not configuration.
    service_name: ClassVar[str]

    log_level: LogLevel = "INFO"
    # Factor V: the build stage bakes this in; "dev" marks an unreleased checkout.
    release_id: str = Field("dev", min_length=1, max_length=128)
    # Time a load balancer gets to notice readiness went red before the listener closes.
    shutdown_drain_seconds: float = Field(0.0, ge=0)
    # Time in-flight requests and messages get to finish once the listener closed.
    shutdown_timeout_seconds: float = Field(10.0, gt=0)
    readiness_timeout_seconds: float = Field(2.0, gt=0, le=10)
    # A connection that has not sent a whole request head this long after it opened or was
    # last answered is closed: an idle keep-alive, or a client sending its headers a byte at
    # a time (slowloris). Longer than the idle timeout of whatever keeps connections open to
    # this process (aiohttp's client: 15 s), or that client may send into a closing socket.
    http_idle_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    # A request's body must have arrived this long after its head, or it is answered 408 and
    # the connection closed; read before the request is admitted, so a slow sender holds a
    # socket, never a place among the requests being worked on.
    http_body_timeout_seconds: float = Field(10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _shutdown_fits_the_grace_period(self) -> ServiceSettings:
        budget = self.shutdown_drain_seconds + self.shutdown_timeout_seconds
        if budget > MAX_SHUTDOWN_BUDGET_SECONDS:
            raise ValueError(
                "SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_TIMEOUT_SECONDS must not exceed "
                f"{MAX_SHUTDOWN_BUDGET_SECONDS:g} s (the orchestrator's kill deadline is 30 s)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment and nothing else: no .env file or secrets dir read behind the
        # operator's back (compose and Kubernetes turn those into variables themselves).
        return init_settings, env_settings

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix", ""))

    @classmethod
    def variable_names(cls) -> dict[str, str]:
        """Field name -> the environment variable it is read from."""
        names = {}
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            names[field_name] = alias if isinstance(alias, str) else cls.env_prefix() + field_name.upper()
        return names

    @classmethod
    def service_variables(cls) -> set[str]:
        """Every variable some process type of this service reads.

        A service's process types (web, relay, worker) subclass one settings class; a
        variable is unknown only if none of them reads it, so a deploy may hand one
        environment to every process of the service.
        """
        # The most basic ancestor that still carries this prefix is the service's own base.
        root = [
            ancestor
            for ancestor in cls.__mro__
            if isinstance(ancestor, type)
            and issubclass(ancestor, ServiceSettings)
            and ancestor.env_prefix() == cls.env_prefix()
        ][-1]
        family: set[type[ServiceSettings]] = set()
        pending = [root]
        while pending:
            member = pending.pop()
            family.add(member)
            pending.extend(member.__subclasses__())
        return {name for member in family for name in member.variable_names().values()}


S = TypeVar("S", bound=ServiceSettings)


class ConfigError(Exception):
    """Every problem with a process's configuration, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_settings(settings_cls: type[S]) -> S:
    """Build settings from the environment, or raise ConfigError listing every problem at once."""
    names = settings_cls.variable_names()
    # The standard OTEL_* variables are every process's configuration too.
    problems = _unknown_variables(settings_cls, os.environ) + telemetry.configuration_problems(os.environ)
    try:
        settings = settings_cls()
    except ValidationError as exc:
        problems = [_describe(error, names) for error in exc.errors()] + problems
    else:
        if not problems:
            return settings
    raise ConfigError(problems)


def load_settings(settings_cls: type[S]) -> S:
    """For ``main()`` only: settings from os.environ, or exit 78 (EX_CONFIG) listing each problem."""
    try:
        return read_settings(settings_cls)
    except ConfigError as exc:
        exit_for_bad_config(exc, service=settings_cls.service_name)


def exit_for_bad_config(error: ConfigError, *, service: str) -> NoReturn:
    """Each problem on a line of its own on stderr, then exit 78 (EX_CONFIG)."""
    for problem in error.problems:
        print(f"config error: {problem}", file=sys.stderr)
    print(f"config error: {service} cannot start; see .env.example for every variable", file=sys.stderr)
    raise SystemExit(os.EX_CONFIG) from None


def _unknown_variables(settings_cls: type[ServiceSettings], environ: Mapping[str, str]) -> list[str]:
    # A misspelt variable would otherwise be silently ignored and its default used.
    prefix = settings_cls.env_prefix()
    known = settings_cls.service_variables()
    return [
        f"{var}: unknown variable for {settings_cls.service_name} (misspelt?)"
        for var in sorted(environ)
        if prefix and var.startswith(prefix) and var not in known
    ]


def _describe(error: Mapping[str, object], names: Mapping[str, str]) -> str:
    location = error.get("loc") or ()
    field = str(location[0]) if isinstance(location, tuple) and location else ""
    variable = names.get(field, field or "settings")
    kind = error.get("type")
    context = error.get("ctx")
    context = context if isinstance(context, dict) else {}
    if kind == "missing":
        return f"{variable}: required but not set"
    # Length errors are phrased here: pydantic's own message states the input's length,
    # which for a secret is already too much.
    if kind == "too_short":
        return f"{variable}: must be at least {context.get('min_length')} characters long"
    if kind == "too_long":
        return f"{variable}: must be at most {context.get('max_length')} characters long"
    # Only pydantic's message, never error["input"]: the input may be a secret.
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{variable}: {message}"


Model = TypeVar("Model", bound=BaseModel)


def backoff_in_order(settings: Model, first: str, most: str) -> Model:
    """For a settings model's validator: a first backoff above its most is refused, naming
    both variables (a retry that would start past its own ceiling is a typo)."""
    if getattr(settings, first) > getattr(settings, most):
        prefix = str(settings.model_config.get("env_prefix", ""))
        raise ValueError(f"{prefix}{first.upper()} must not exceed {prefix}{most.upper()}")
    return settings
