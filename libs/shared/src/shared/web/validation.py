"""JSON request bodies into pydantic models, with the client told precisely what was wrong."""

from __future__ import annotations

from typing import Annotated, TypeVar

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ValidationError

from shared.web.problems import Problem

M = TypeVar("M", bound=BaseModel)


def _integral(value: object) -> object:
    # JSON has one number type: 5.0 is the integer 5 (JSON Schema says so too), and some
    # clients' serialisers write it that way. 5.5 stays a float, and strict mode refuses it,
    # as it refuses "5".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a strict model that accepts any JSON number with no fractional part.
JsonInt = Annotated[int, BeforeValidator(_integral)]


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Each bad field and why, without echoing what was sent (it could be anything)."""
    errors = exc.errors()
    locations = [tuple(error["loc"]) for error in errors]

    def explained_by_its_elements(location: tuple[object, ...]) -> bool:
        # pydantic calls a list "too short" when an element failed; the element's error says why.
        return any(len(other) > len(location) and other[: len(location)] == location for other in locations)

    return [
        {
            "field": ".".join(str(part) for part in error["loc"]) or "body",
            "message": "unknown field" if error["type"] == "extra_forbidden" else error["msg"],
        }
        for error, location in zip(errors, locations, strict=True)
        if not explained_by_its_elements(location)
    ]


def unprocessable(errors: list[dict[str, str]]) -> Problem:
    return Problem(422, "Unprocessable Content", "The request is not valid; see errors.", errors=errors)


async def json_body(request: web.Request, model: type[M]) -> M:
    """415 for another media type, 400 for broken JSON, 422 naming each bad field; 413 comes from aiohttp."""
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported Media Type", "Send the body as application/json.")
    body = await request.read()
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise Problem(400, "Bad Request", "The body is not valid JSON.") from None
        raise unprocessable(field_errors(exc)) from None
