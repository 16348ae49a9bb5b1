"""What the browser tests share: a page that records what went wrong on it."""

from __future__ import annotations

from playwright.async_api import Browser, Page

RENDER_TIMEOUT_MS = 60_000  # a bound against a hang on a loaded machine, not a speed check


async def watched(browser: Browser, origin: str) -> tuple[Page, list[str]]:
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
