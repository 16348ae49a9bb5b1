"""Typed application state of the gateway."""

from aiohttp import web

from gateway.settings import WebSettings

SETTINGS = web.AppKey("gateway_settings", WebSettings)
