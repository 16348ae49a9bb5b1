"""The order board at /, in a real browser: an order placed on the page reaches notified on
it without a reload, pushed over the live update stream; another customer never sees it."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from harness.stack import DEMO_CUSTOMERS, Stack
from harness.switchboard import Switchboard

from .support import RENDER_TIMEOUT_MS, watched

# Where the board links each order's trace (never fetched by the page: a link to follow).
TRACE_LINK = "http://127.0.0.1:16686/trace/"
SCREENSHOTS = Path(__file__).parents[2] / "tools" / "screenshots.py"
# The whole pipeline (relay, RabbitMQ, notifier, SMTP, worker) on a loaded machine: a bound
# against a hang, not a speed check.
NOTIFIED_TIMEOUT_MS = 60_000


@pytest.fixture
def extra_env(faults_port: int) -> dict[str, str]:
    """The board's fault panel, through the gateway, to the switchboard below."""
    return {"GATEWAY_BOARD_FAULTS_URL": f"http://127.0.0.1:{faults_port}", "GATEWAY_BOARD_TRACE_LINK": TRACE_LINK}


async def _signed_in(browser: Browser, origin: str, customer: str) -> tuple[Page, list[str]]:
    page, problems = await watched(browser, origin)
    await page.goto(f"{origin}/")
    await page.select_option("#demo-customer", customer)
    await page.click("#demo-form button")
    await expect(page.locator("#customer")).to_have_text(customer, timeout=RENDER_TIMEOUT_MS)
    await expect(page.locator("#live")).to_have_attribute("data-live", "true", timeout=RENDER_TIMEOUT_MS)
    return page, problems


@pytest.mark.usefixtures("switchboard")
async def test_an_order_placed_on_the_board_reaches_notified_live_and_only_its_customer_sees_it(
    stack: Stack, browser: Browser
) -> None:
    alice, bob = DEMO_CUSTOMERS
    page, problems = await _signed_in(browser, stack.gateway_url, alice)
    others_page, others_problems = await _signed_in(browser, stack.gateway_url, bob)
    reloads: list[str] = []
    page.on("framenavigated", lambda frame: reloads.append(frame.url))

    await page.click("#place")
    row = page.locator("#rows tr").first
    await expect(row).to_have_attribute("data-status", "notified", timeout=NOTIFIED_TIMEOUT_MS)
    order_id = await row.get_attribute("data-order-id")
    trace_link = await row.get_by_role("link", name="trace").get_attribute("href")
    # Retrying with the same Idempotency-Key answers the same order: still one row.
    await page.click("#retry")
    await expect(page.locator("#place-result")).to_contain_text("Replayed", timeout=RENDER_TIMEOUT_MS)

    assert order_id
    # The one trace the order's placement started, from the gateway to the worker.
    assert trace_link is not None
    assert re.fullmatch(re.escape(TRACE_LINK) + "[0-9a-f]{32}", trace_link), trace_link
    assert await page.locator("#rows tr").count() == 1
    assert reloads == []
    # Bob's board, live all along, shows none of Alice's orders.
    await expect(others_page.locator("#live")).to_have_attribute("data-live", "true")
    assert await others_page.locator(f'#rows tr[data-order-id="{order_id}"]').count() == 0
    assert await others_page.locator("#rows tr").count() == 0
    assert problems == []
    assert others_problems == []


@pytest.mark.usefixtures("switchboard")
async def test_make_screenshots_writes_the_board_and_the_docs_page(stack: Stack, tmp_path: Path) -> None:
    """`make screenshots`, short: the tool the README's images come from, against the running system."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCREENSHOTS),
        "--gateway",
        stack.gateway_url,
        "--out",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(RENDER_TIMEOUT_MS * 3 / 1000):
        output, _ = await process.communicate()

    assert process.returncode == 0, output.decode()
    for name in ("board.png", "api-docs.png"):
        image = (tmp_path / name).read_bytes()
        assert image.startswith(b"\x89PNG\r\n\x1a\n"), name


async def test_a_fault_switched_on_and_off_on_the_board_shows_its_verdict_nothing_lost_or_duplicated(
    stack: Stack, browser: Browser, switchboard: Switchboard
) -> None:
    page, problems = await _signed_in(browser, stack.gateway_url, DEMO_CUSTOMERS[0])
    fault = page.locator('#fault-list li[data-fault="smtp-refusing"]')

    await fault.locator("button").click()
    await expect(fault).to_have_attribute("data-on", "true", timeout=RENDER_TIMEOUT_MS)
    for _ in range(3):
        await page.click("#place")
    await expect(page.locator("#rows tr")).to_have_count(3, timeout=RENDER_TIMEOUT_MS)
    emails_while_refusing = stack.mailbox.count
    await fault.locator("button").click()
    verdict = fault.locator(".verdict")
    await expect(verdict).to_be_visible(timeout=NOTIFIED_TIMEOUT_MS)

    assert emails_while_refusing == 0
    assert (await verdict.inner_text()).startswith("Last run: 3 orders accepted while on, 0 lost, 0 duplicated")
    await expect(page.locator('#rows tr[data-status="notified"]')).to_have_count(3, timeout=NOTIFIED_TIMEOUT_MS)
    assert problems == []
