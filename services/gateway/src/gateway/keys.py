"""Typed application state of the gateway."""

from aiohttp import web

from gateway.settings import WebSettings
from gateway.tokens import TokenVerifier

SETTINGS = web.AppKey("gateway_settings", WebSettings)
TOKENS = web.AppKey("token_verifier", TokenVerifier)
