"""One line per step of `make audit` as it goes: a run takes a minute or more, and was silent."""

from __future__ import annotations

import sys
import time

_BEGAN = time.monotonic()


def step(message: str) -> None:
    """``audit [  12 s] message`` on stderr, so the report on stdout stays the report."""
    print(f"audit [{time.monotonic() - _BEGAN:4.0f} s] {message}", file=sys.stderr, flush=True)
