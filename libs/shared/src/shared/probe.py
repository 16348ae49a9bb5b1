"""``python -m shared.probe URL``: exit 0 when URL answers 2xx, 1 otherwise.

Container healthchecks run inside the image, and a slim image has no curl or wget; the
interpreter is already there. Compose and Docker point it at a process's /readyz.

Outside shared.web on purpose, and the standard library only: a probe runs every few seconds
in every container, and importing shared.web (aiohttp, OpenTelemetry, pydantic) cost 0.7 s
of CPU each time — about a quarter of a core per container, and past the probe's 3 s
timeout on a loaded machine.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

TIMEOUT_SECONDS = 3.0


def probe(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    if not url.startswith(("http://", "https://")):
        return False, f"{url}: not an http(s) URL"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return 200 <= response.status < 300, f"{url}: {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"{url}: {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, f"{url}: {error}"


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m shared.probe URL", file=sys.stderr)
        return 2
    healthy, detail = probe(args[0])
    print(detail, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
