"""A client that sends its request head a line at a time, to see when a server gives up on it."""

from __future__ import annotations

import asyncio

# How often the next line goes out, and for how long at most: far past the bounds under test,
# so that a loaded machine is not what decides.
PACE_SECONDS = 0.2
GIVE_UP_SECONDS = 15.0


async def trickle_until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send a header line at every pace until the server closes; what it said before closing.

    Fails when the server still reads after GIVE_UP_SECONDS: it holds slow clients unbounded.
    """
    for line in range(round(GIVE_UP_SECONDS / PACE_SECONDS)):
        try:
            writer.write(b"X-Slow-%d: y\r\n" % line)
            await writer.drain()
            # Pacing, not synchronisation: this client is slow on purpose.
            return await asyncio.wait_for(reader.read(), PACE_SECONDS)
        except TimeoutError:
            continue
        except ConnectionError:
            return b""
    raise AssertionError(f"the server still read a request head after {GIVE_UP_SECONDS:g} s")
