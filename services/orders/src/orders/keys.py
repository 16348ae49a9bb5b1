"""Typed application state of the orders processes."""

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from orders.repository import Placed, Placement
from orders.settings import RelaySettings, WebSettings, WorkerSettings
from orders.updates import OrderUpdates
from shared.batching import Coalescer
from shared.db import Pool
from shared.web.streams import StreamSlots

DB_POOL = web.AppKey("db_pool", Pool)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
WEB_SETTINGS = web.AppKey("web_settings", WebSettings)
RELAY_SETTINGS = web.AppKey("relay_settings", RelaySettings)
WORKER_SETTINGS = web.AppKey("worker_settings", WorkerSettings)
# Orders placed in the same turn of the event loop go to the database in one statement.
PLACER = web.AppKey("order_placer", Coalescer[Placement, Placed])
# Live order updates (orders.updates), and how many streams of them may be open at once.
UPDATES = web.AppKey("order_updates", OrderUpdates)
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)
