"""The HTTP surface every Dozen process shares: health, readiness, metrics, errors, lifecycle."""

from shared.web.access_log import InternalAccessLogger, JsonAccessLogger
from shared.web.app import READINESS, CleanupContext, create_base_app
from shared.web.limit import AdaptiveLimit, FixedLimit
from shared.web.problems import PROBLEM_CONTENT_TYPE, Problem, problem_response
from shared.web.readiness import Readiness
from shared.web.runner import run, serve
from shared.web.validation import JsonInt, field_errors, json_body, unprocessable

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "READINESS",
    "AdaptiveLimit",
    "CleanupContext",
    "FixedLimit",
    "InternalAccessLogger",
    "JsonAccessLogger",
    "JsonInt",
    "Problem",
    "Readiness",
    "create_base_app",
    "field_errors",
    "json_body",
    "problem_response",
    "run",
    "serve",
    "unprocessable",
]
