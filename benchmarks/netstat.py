"""Connection attempts the kernel dropped because a listening socket's queue was full: each
costs its client a SYN sent again a second later."""

from __future__ import annotations

from pathlib import Path


def listen_drops() -> int:
    """TcpExt ListenDrops since boot, machine-wide (over a bench step: the system under test's)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    # Pairs of lines: the counters' names, then their values.
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:], strict=True))["ListenDrops"])
    raise RuntimeError("no TcpExt counters in /proc/net/netstat")
