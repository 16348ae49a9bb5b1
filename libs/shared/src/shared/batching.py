"""Calls made in the same turn of the event loop, served together by one call.

A web process under load takes up many requests in one turn of its event loop; each would
make its own round trip to the same server (an INSERT, a rate-limit check). A ``Coalescer``
gathers what is asked in that turn and serves it with one call of its handler when the turn
ends, up to ``max_batch`` at a time. Nothing waits for company: alone, a call is served at
the end of its own turn, so batches grow only when the load does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# One outcome per item, in order: its result, or the exception that failed it alone.
BatchCall = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]


class Coalescer(Generic[T, R]):
    def __init__(self, handle: BatchCall[T, R], *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._handle = handle
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[R] = loop.create_future()
        if not self._waiting:
            # At the end of this turn: every call made in it has joined by then. The batch
            # runs in this first caller's context (its trace, its deadline).
            loop.call_soon(self._serve)
        self._waiting.append((item, answer))
        return await answer

    def _serve(self) -> None:
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self._max_batch):
            batch = asyncio.create_task(self._run(waiting[start : start + self._max_batch]))
            self._batches.add(batch)
            batch.add_done_callback(self._batches.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = _checked(await self._handle([item for item, _ in batch]), len(batch))
        except BaseException as failure:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(failure)
            if not isinstance(failure, Exception):
                raise
            return
        for (_, answer), outcome in zip(batch, outcomes, strict=True):
            if answer.done():  # its caller gave up (cancelled): the outcome goes nowhere
                continue
            if isinstance(outcome, Exception):
                answer.set_exception(outcome)
            else:
                answer.set_result(outcome)


def _checked(outcomes: Sequence[R | Exception], expected: int) -> Sequence[R | Exception]:
    if len(outcomes) != expected:
        raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {expected}")
    return outcomes
