"""IV as written: every backing service is an attached resource named by config. Each URL a
process type reads is a required setting (no default to fall back on; or, for a resource an
optional feature attaches, None until one is given), and no service's code
names a host or a backing service's URL itself. (The running system's swap: tests/test_backing_swap.py.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Annotated, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from audit.deploys import PROCESS_SETTINGS, SERVICES
from audit.scorecard import Verdict, verdict

# A URL with a host, or a loopback host, written into a string the code uses.
_ADDRESS = re.compile(
    r"\b(?:postgres(?:ql)?|amqps?|redis|rediss|smtps?|https?)://[\w.-]+|\blocalhost\b|\b127\.0\.0\.1\b"
)


def url_settings(service: str) -> dict[str, bool]:
    """Every URL variable some process type of ``service`` reads -> whether it is required."""
    found: dict[str, bool] = {}
    for (owner, _), settings_cls in PROCESS_SETTINGS.items():
        if owner != service:
            continue
        names = settings_cls.variable_names()
        for field_name, field in settings_cls.model_fields.items():
            if field_name.endswith("_url"):
                # A secret (URLs carry credentials and must never be echoed), and required: no
                # default host to fall back on. Or optional, None by default: a resource some
                # feature attaches when one is given (the board's fault switchboard), never a
                # default of its own.
                ok = (field.annotation is SecretStr and field.is_required()) or _optional_secret(field)
                found[names[field_name]] = found.get(names[field_name], True) and ok
    return found


def _optional_secret(field: FieldInfo) -> bool:
    """``SecretStr | None = None``, a validating ``Annotated[SecretStr, …]`` included."""
    members = {
        get_args(member)[0] if get_origin(member) is Annotated else member for member in get_args(field.annotation)
    }
    return field.default is None and members == {SecretStr, type(None)}


def addresses_in_code(source: Path) -> list[str]:
    """Hosts and URLs in the string literals of ``source`` (docstrings and comments aside)."""
    found = []
    for path in sorted(source.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                found += [
                    f"{path.relative_to(source.parents[2])}:{node.lineno}: {match}"
                    for match in _ADDRESS.findall(node.value)
                ]
    return found


def _without_credentials(address: str) -> str:
    """scheme://host of a URL (what the report may show), or the bare host as found."""
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.hostname}" if parts.scheme and parts.hostname else address


def backing_services(root: Path) -> list[Verdict]:
    verdicts = []
    for service in SERVICES:
        urls = url_settings(service)
        failures = [
            f"{variable} has a default or is not a secret URL setting" for variable, ok in urls.items() if not ok
        ]
        failures += [
            f"an address in the code: {found}" for found in addresses_in_code(root / "services" / service / "src")
        ]
        evidence = [
            f"reached through {', '.join(sorted(urls))}: required secret URL settings, no default",
            f"no host or backing-service URL written into services/{service}/src",
        ]
        verdicts.append(verdict("IV", service, failures, evidence))
    return verdicts
