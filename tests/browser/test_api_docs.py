"""The pages a visitor opens, in a real browser: Debian's chromium, driven by Playwright."""

from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import Browser
from playwright.async_api import TimeoutError as PlaywrightTimeout

from harness.stack import Stack

from .support import RENDER_TIMEOUT_MS, watched

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


async def test_the_api_docs_render_every_operation_of_the_gateways_openapi_document(
    stack: Stack, browser: Browser
) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.gateway_url}/api/openapi.json") as answer:
        spec = await answer.json()
    operations = {
        (method.upper(), path) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS
    }
    assert operations, "the document describes no operation"

    page, problems = await watched(browser, stack.gateway_url)
    await page.goto(f"{stack.gateway_url}/api/docs")
    try:
        await page.wait_for_selector(".opblock", timeout=RENDER_TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no operation rendered; what went wrong on the page: {problems}")
    shown = {
        (
            (await block.locator(".opblock-summary-method").inner_text()).strip(),
            await block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in await page.locator(".opblock").all()
    }

    assert shown == operations
    assert problems == []
