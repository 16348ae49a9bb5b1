"""Screenshots of a running Dozen's pages, for the README: the order board with a few orders
placed on it and carried through to notified, and the API docs.

`make screenshots` runs it against `make dev` (or `make up`); it signs in through the board's
demo sign-in, so the gateway must have GATEWAY_DEMO_CUSTOMERS set, as `.env.example` does.
Exits 1 naming what did not happen within --timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, ViewportSize

from harness.browser import chromium

ORDERS = 3
VIEWPORT: ViewportSize = {"width": 1200, "height": 760}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_gateway = f"http://127.0.0.1:{os.environ.get('DEV_GATEWAY_PORT', '8080')}"
    parser.add_argument("--gateway", default=default_gateway, help="the gateway's base URL (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where the PNGs go (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds any one step may take")
    return parser.parse_args(argv)


async def board(page: Page, gateway: str, out: Path, timeout_ms: float) -> Path:
    await page.goto(f"{gateway}/")
    sign_in = page.locator("#demo-form")
    await sign_in.wait_for(state="visible", timeout=timeout_ms)
    await sign_in.locator("button").click()
    await page.locator('#live[data-live="true"]').wait_for(timeout=timeout_ms)
    for _ in range(ORDERS):
        await page.click("#place")
    await page.click("#retry")  # the same key again: the page says it answered the same order
    for row in range(ORDERS):
        await page.locator(f'#rows tr:nth-child({row + 1})[data-status="notified"]').wait_for(timeout=timeout_ms)
    if await page.locator("#health").is_visible():
        # The strip's rates need two reads of the metrics, the second after these orders.
        await page.locator('#health-p99[data-known="true"]').wait_for(timeout=timeout_ms)
    return await _shot(page, out / "board.png")


async def api_docs(page: Page, gateway: str, out: Path, timeout_ms: float) -> Path:
    await page.goto(f"{gateway}/api/docs")
    await page.locator(".opblock").first.wait_for(timeout=timeout_ms)
    return await _shot(page, out / "api-docs.png")


async def _shot(page: Page, path: Path) -> Path:
    await page.screenshot(path=path, full_page=True)
    return path


async def take(gateway: str, out: Path, timeout_seconds: float) -> list[Path]:
    async with chromium() as browser:
        page = await browser.new_page(viewport=VIEWPORT)
        try:
            return [
                await board(page, gateway, out, timeout_seconds * 1000),
                await api_docs(page, gateway, out, timeout_seconds * 1000),
            ]
        except PlaywrightError as error:
            raise SystemExit(f"screenshots: {error.message.splitlines()[0]} (at {page.url})") from None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(take(args.gateway, args.out, args.timeout)):
        print(f"screenshots: wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
