"""Typed application state of the orders processes."""

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from orders.repository import Placed, Placement
from orders.settings import RelaySettings, WebSettings, WorkerSettings
from shared.batching import Coalescer
from shared.db import Pool

DB_POOL = web.AppKey("db_pool", Pool)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
WEB_SETTINGS = web.AppKey("web_settings", WebSettings)
RELAY_SETTINGS = web.AppKey("relay_settings", RelaySettings)
WORKER_SETTINGS = web.AppKey("worker_settings", WorkerSettings)
# Orders placed in the same turn of the event loop go to the database in one statement.
PLACER = web.AppKey("order_placer", Coalescer[Placement, Placed])
