from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from .support import OrdersStandIn

pytest_plugins = ["shared.testing.plugin"]


@pytest.fixture
async def orders_url() -> AsyncIterator[str]:
    """An orders stand-in on a loopback port, for gateways that only need somewhere to forward."""
    async with TestServer(OrdersStandIn().app()) as server:
        yield str(server.make_url("/"))


@pytest.fixture
async def orders() -> AsyncIterator[tuple[OrdersStandIn, str]]:
    """An orders stand-in a test can make fail, and its URL."""
    stand_in = OrdersStandIn()
    async with TestServer(stand_in.app()) as server:
        yield stand_in, str(server.make_url("/"))
