"""The pages a visitor opens, in a real browser: Debian's chromium, driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from harness.stack import Stack

CHROMIUM = "/usr/bin/chromium"  # Debian's package: no browser download (.ci/run installs it)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
RENDER_TIMEOUT_MS = 60_000  # a bound against a hang on a loaded machine, not a speed check
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _watched(browser: Browser, origin: str) -> tuple[Page, list[str]]:
    """A page, and what went wrong on it: console errors (a CSP violation is one), failed
    requests, and any request to somewhere other than ``origin``."""
    page = await browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on(
        "request",
        lambda request: None if request.url.startswith((origin, "data:")) else problems.append(f"left: {request.url}"),
    )
    return page, problems


async def test_the_api_docs_render_every_operation_of_the_gateways_openapi_document(
    stack: Stack, browser: Browser
) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.gateway_url}/api/openapi.json") as answer:
        spec = await answer.json()
    operations = {
        (method.upper(), path) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS
    }
    assert operations, "the document describes no operation"

    page, problems = await _watched(browser, stack.gateway_url)
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
