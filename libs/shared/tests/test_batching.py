"""Calls made in one turn of the event loop are served by one batch; each fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.batching import Coalescer


async def test_calls_of_one_turn_make_one_batch_and_each_gets_its_own_outcome() -> None:
    batches: list[list[int]] = []

    async def handle(items: Sequence[int]) -> list[int | Exception]:
        batches.append(list(items))
        return [ValueError(f"odd {item}") if item % 2 else item * 10 for item in items]

    double = Coalescer(handle, max_batch=3)
    outcomes = await asyncio.gather(*(double(item) for item in range(5)), return_exceptions=True)

    assert batches == [[0, 1, 2], [3, 4]]
    assert [str(outcome) for outcome in outcomes] == ["0", "odd 1", "20", "odd 3", "40"]
    # Alone, a call is served at once, in a batch of one.
    assert await double(6) == 60
    assert batches[-1] == [6]


async def test_a_batch_failing_as_a_whole_fails_every_call_in_it() -> None:
    async def handle(items: Sequence[int]) -> list[int | Exception]:
        raise ConnectionRefusedError("database down")

    down = Coalescer(handle, max_batch=10)
    outcomes = await asyncio.gather(down(1), down(2), return_exceptions=True)

    assert [type(outcome) for outcome in outcomes] == [ConnectionRefusedError, ConnectionRefusedError]


async def test_a_caller_that_gives_up_leaves_the_others_their_outcomes() -> None:
    serving, release = asyncio.Event(), asyncio.Event()

    async def handle(items: Sequence[int]) -> list[int | Exception]:
        serving.set()
        await release.wait()
        return list(items)

    echo = Coalescer(handle, max_batch=10)
    impatient, patient = asyncio.create_task(echo(1)), asyncio.create_task(echo(2))
    await serving.wait()  # both joined the batch being served
    impatient.cancel()
    release.set()

    assert await patient == 2
    with pytest.raises(asyncio.CancelledError):
        await impatient
