"""``gateway <command>``: the web process, and issuing tokens as a one-off admin command."""

from __future__ import annotations

import argparse

from gateway.settings import GatewaySettings, WebSettings
from gateway.tokens import issue_token
from shared.config import load_settings
from shared.process import running
from shared.web import run


def web(arguments: argparse.Namespace) -> None:
    from opentelemetry.propagate import set_global_textmap  # noqa: PLC0415

    from gateway.app import create_app  # noqa: PLC0415 - each process imports only what it runs
    from gateway.edge_tracing import UntrustedCaller  # noqa: PLC0415

    settings = load_settings(WebSettings)
    with running(settings):
        # The public edge: a caller's trace context is linked, never continued.
        set_global_textmap(UntrustedCaller())
        run(create_app(settings), port=settings.port, management_port=settings.management_port, settings=settings)


def token(arguments: argparse.Namespace) -> None:
    settings = load_settings(GatewaySettings)
    try:
        # All checked before any is printed: one line per subject, in order, or none.
        tokens = [issue_token(settings, subject, ttl_seconds=arguments.ttl_seconds) for subject in arguments.subjects]
    except ValueError as exc:
        raise SystemExit(f"gateway issue-token: {exc}") from None
    print("\n".join(tokens))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gateway", description="Dozen's API gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "web", help="serve the public API on GATEWAY_PORT, probes and metrics on GATEWAY_MANAGEMENT_PORT"
    ).set_defaults(run=web)
    issue = commands.add_parser("issue-token", help="print a bearer token for a customer (one-off)")
    issue.add_argument(
        "--subject",
        dest="subjects",
        action="append",
        required=True,
        help="the customer id the token speaks for; repeated, one token per line, in order",
    )
    issue.add_argument("--ttl-seconds", type=int, default=3600, help="lifetime (default: one hour)")
    issue.set_defaults(run=token)
    arguments = parser.parse_args(argv)
    arguments.run(arguments)
