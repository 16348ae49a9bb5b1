"""Test support: real backing services, polling with deadlines, real processes.

The fixtures live in ``shared.testing.plugin``; a member enables them in its conftest.
"""

from shared.testing.polling import eventually
from shared.testing.probes import drain, execute, fetch, fetchval, free_port, is_ready, wait_until_ready
from shared.testing.processes import ServiceProcess

__all__ = [
    "ServiceProcess",
    "drain",
    "eventually",
    "execute",
    "fetch",
    "fetchval",
    "free_port",
    "is_ready",
    "wait_until_ready",
]
