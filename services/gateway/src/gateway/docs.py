"""The API's documentation at /api/docs: Swagger UI rendering the gateway's own OpenAPI document.

Swagger UI comes from the swagger-ui-py wheel (a pinned registry package, its assets inside),
served by the gateway itself: the page makes no request to anywhere else. Its one inline
script is allowed by its hash, so the page keeps a Content-Security-Policy as strict as the
API's apart from what a page needs (its own scripts, styles, images and the document).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from aiohttp import web
from swagger_ui.core import ApplicationDocument  # type: ignore[import-untyped]  # ships no type information

DOCS_PATH = "/api/docs"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def add_api_docs(app: web.Application, *, openapi_path: str) -> None:
    """Serve the docs page at DOCS_PATH, and Swagger UI's assets under it."""
    document = ApplicationDocument(
        app,
        config_rel_url=openapi_path,
        url_prefix=DOCS_PATH,
        title="Dozen API",
        # The plain layout: the standalone one adds a bar that loads any other document.
        parameters={"layout": '"BaseLayout"', "presets": "[SwaggerUIBundle.presets.apis]"},
    )
    # The library would look for the document under its own prefix; Dozen's lives beside it.
    document.parameters["url"] = f'"{openapi_path}"'
    html: str = document.doc_html
    policy = (
        f"default-src 'none'; script-src 'self' {_hashes(_INLINE_SCRIPT.findall(html))}; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    )

    async def page(request: web.Request) -> web.Response:
        response = web.Response(text=html, content_type="text/html")
        response.headers["Content-Security-Policy"] = policy
        return response

    app.router.add_get(DOCS_PATH, page)
    app.router.add_static(f"{DOCS_PATH}/static", Path(document.static_dir))


def _hashes(scripts: list[str]) -> str:
    """CSP sources that allow exactly these inline scripts."""
    digests = (base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() for script in scripts)
    return " ".join(f"'sha256-{digest}'" for digest in digests)
