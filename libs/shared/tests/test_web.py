from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from shared.config import ServiceSettings
from shared.testing import eventually
from shared.web import PROBLEM_CONTENT_TYPE, READINESS, Problem, create_base_app
from shared.web.supervision import LIFECYCLE, supervise


class WebSettings(ServiceSettings, env_prefix="WEBTEST_"):
    service_name = "webtest"


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("connection to db-internal.svc.cluster.local:5432 refused")


async def refuse(request: web.Request) -> web.Response:
    raise Problem(422, "Unprocessable Content", "quantity must be positive", errors=[{"field": "quantity"}])


async def echo(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


def make_app() -> web.Application:
    app = create_base_app(WebSettings(readiness_timeout_seconds=0.2), max_body_bytes=1024)
    app.router.add_get("/crash", crash)
    app.router.add_get("/refuse", refuse)
    app.router.add_post("/echo", echo)
    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app())) as test_client:
        yield test_client


async def test_healthz_answers_without_touching_dependencies(client: TestClient[web.Request, web.Application]) -> None:
    async def never_ready() -> None:
        raise ConnectionRefusedError

    client.app[READINESS].add_check("postgres", never_ready)

    response = await client.get("/healthz")

    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_healthz_is_503_once_a_supervised_loop_has_died(client: TestClient[web.Request, web.Application]) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    supervise(client.app, asyncio.create_task(broken(), name="the-loop"))

    await eventually(lambda: client.app[LIFECYCLE].failure is not None, description="the loop's end noticed")
    response = await client.get("/healthz")
    assert response.status == 503
    assert await response.json() == {"status": "failed", "reason": "the-loop ended"}
    assert client.app[LIFECYCLE].stop_requested.is_set()


async def test_readyz_reports_each_dependency(client: TestClient[web.Request, web.Application]) -> None:
    async def fine() -> None:
        return None

    client.app[READINESS].add_check("postgres", fine)

    response = await client.get("/readyz")

    assert response.status == 200
    assert await response.json() == {"status": "ready", "checks": {"postgres": "ok"}}


async def test_readyz_is_503_when_a_dependency_fails_or_hangs(
    client: TestClient[web.Request, web.Application],
) -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("db-internal:5432 with password hunter2")

    async def hangs() -> None:
        await asyncio.Event().wait()

    client.app[READINESS].add_check("postgres", refused)
    client.app[READINESS].add_check("rabbitmq", hangs)

    response = await client.get("/readyz")

    assert response.status == 503
    body = await response.json()
    assert body["checks"] == {"postgres": "failed: ConnectionRefusedError", "rabbitmq": "timed out after 0.2 s"}
    assert "hunter2" not in await response.text()


async def test_readyz_is_503_once_shutdown_began(client: TestClient[web.Request, web.Application]) -> None:
    client.app[READINESS].begin_shutdown()

    response = await client.get("/readyz")

    assert response.status == 503
    assert (await response.json())["checks"] == {"shutdown": "in progress"}


async def test_connections_are_kept_alive_until_shutdown_then_closed_after_each_answer(
    client: TestClient[web.Request, web.Application],
) -> None:
    before = await client.get("/healthz")
    client.app[READINESS].begin_shutdown()
    during = await client.get("/healthz")

    assert before.headers.get("Connection", "keep-alive").lower() == "keep-alive"
    assert during.status == 200
    assert during.headers["Connection"].lower() == "close"


async def test_metrics_are_prometheus_text(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/metrics")

    assert response.status == 200
    assert response.content_type == "text/plain"
    assert "python_gc_objects_collected_total" in await response.text()


async def test_unknown_route_is_a_problem_document(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/nowhere")

    assert response.status == 404
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert await response.json() == {"type": "about:blank", "title": "Not Found", "status": 404}


async def test_wrong_method_keeps_the_allow_header(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.delete("/healthz")

    assert response.status == 405
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert "GET" in response.headers["Allow"]


async def test_unhandled_error_is_500_without_internals(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/crash")

    assert response.status == 500
    assert response.content_type == PROBLEM_CONTENT_TYPE
    text = await response.text()
    assert "Traceback" not in text
    assert "db-internal" not in text
    assert (await response.json())["detail"] == "An unexpected error occurred."


async def test_raised_problem_carries_its_extensions(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/refuse")

    assert response.status == 422
    assert await response.json() == {
        "type": "about:blank",
        "title": "Unprocessable Content",
        "status": 422,
        "detail": "quantity must be positive",
        "errors": [{"field": "quantity"}],
    }


async def test_oversized_body_is_413(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/echo", data=b"x" * 2048, headers={"Content-Type": "application/json"})

    assert response.status == 413
    assert response.content_type == PROBLEM_CONTENT_TYPE


def served(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("dozen_http_server_request_duration_seconds_count", labels) or 0


async def test_requests_are_counted_per_route_template_and_status_class(
    client: TestClient[web.Request, web.Application],
) -> None:
    before = served("/healthz", "GET", "2xx"), served("unmatched", "GET", "4xx"), served("/crash", "GET", "5xx")

    await client.get("/healthz")
    await client.get("/no/such/path/123")
    await client.get("/crash")

    after = served("/healthz", "GET", "2xx"), served("unmatched", "GET", "4xx"), served("/crash", "GET", "5xx")
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]


async def test_build_info_names_service_version_and_release(client: TestClient[web.Request, web.Application]) -> None:
    exposition = await (await client.get("/metrics")).text()

    assert 'dozen_build_info{release="dev",service="webtest",version="unknown"} 1.0' in exposition
