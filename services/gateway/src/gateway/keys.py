"""Typed application state of the gateway."""

from aiohttp import web

from gateway.settings import WebSettings
from gateway.tokens import TokenVerifier
from shared.web.streams import StreamSlots

SETTINGS = web.AppKey("gateway_settings", WebSettings)
TOKENS = web.AppKey("token_verifier", TokenVerifier)
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)
