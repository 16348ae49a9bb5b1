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
