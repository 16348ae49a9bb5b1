from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.config import ServiceSettings
from shared.web import PROBLEM_CONTENT_TYPE, JsonInt, create_base_app, json_body


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    quantity: int = Field(ge=1)


class Basket(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    owner: str = Field(min_length=1)
    lines: list[Line] = Field(min_length=1)


class ValidationSettings(ServiceSettings, env_prefix="VALIDATIONTEST_"):
    service_name = "validationtest"


async def accept(request: web.Request) -> web.Response:
    basket = await json_body(request, Basket)
    return web.json_response(basket.model_dump())


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_base_app(ValidationSettings())
    app.router.add_post("/baskets", accept)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_valid_body_becomes_the_model(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/baskets", json={"owner": "alice", "lines": [{"quantity": 2}]})

    assert response.status == 200
    assert await response.json() == {"owner": "alice", "lines": [{"quantity": 2}]}


async def test_each_bad_field_is_named_once_without_its_value(
    client: TestClient[web.Request, web.Application],
) -> None:
    body = {"owner": "", "lines": [{"quantity": 0}, {"quantity": "3"}], "secret": "hunter2"}  # pragma: allowlist secret

    response = await client.post("/baskets", json=body)

    assert response.status == 422
    assert response.content_type == PROBLEM_CONTENT_TYPE
    problem = await response.json()
    assert [error["field"] for error in problem["errors"]] == [
        "owner",
        "lines.0.quantity",
        "lines.1.quantity",
        "secret",
    ]
    assert problem["errors"][-1]["message"] == "unknown field"
    assert "hunter2" not in await response.text()


async def test_broken_json_is_400_and_another_media_type_415(
    client: TestClient[web.Request, web.Application],
) -> None:
    broken = await client.post("/baskets", data=b'{"owner":', headers={"Content-Type": "application/json"})
    form = await client.post("/baskets", data={"owner": "alice"})

    assert broken.status == 400
    assert (await broken.json())["detail"] == "The body is not valid JSON."
    assert form.status == 415


class Counted(BaseModel):
    model_config = ConfigDict(strict=True)

    count: JsonInt


@pytest.mark.parametrize(("sent", "kept"), [(3, 3), (3.0, 3), (-0.0, 0)])
def test_a_json_int_takes_any_whole_number(sent: object, kept: int) -> None:
    counted = Counted.model_validate({"count": sent})
    assert counted.count == kept
    assert type(counted.count) is int


@pytest.mark.parametrize("sent", [3.5, "3", True, None])
def test_a_json_int_refuses_fractions_strings_and_booleans(sent: object) -> None:
    with pytest.raises(ValidationError):
        Counted.model_validate({"count": sent})
