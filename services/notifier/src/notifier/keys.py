"""Typed application state of the notifier worker."""

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from notifier.mail import Mailer
from notifier.settings import WorkerSettings
from shared.db import Pool
from shared.messaging import Publisher

DB_POOL = web.AppKey("db_pool", Pool)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
# Publishing on a connection of its own: an alarm that blocks it leaves consuming alone.
AMQP_PUBLISHING = web.AppKey("amqp_publishing", AbstractRobustConnection)
SETTINGS = web.AppKey("worker_settings", WorkerSettings)
EVENTS = web.AppKey("events_publisher", Publisher)
MAILER = web.AppKey("mailer", Mailer)
