"""Calls made in groups (group commit): what waits while a group is being made goes together
as the next one.

Under load, a short call's own work is small next to what every call repeats: a transaction,
its statements, a read of the log head. A :class:`Grouped` call waits in a list; the first one
starts a task that takes every call then waiting (up to a limit) and makes them with one
function, then takes those that arrived meanwhile, until none is left. A call that arrives
while nothing is running waits only for the event loop's next turns. Each call gets its own
answer or its own error.

Every call of a group arrived before the group was taken, and so before its work began: a
group's read sees whatever was committed before each of its calls arrived (what a credential
check needs, see :mod:`api.gate`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from anyio.lowlevel import RunVar

__all__ = ["Grouped"]

T = TypeVar("T")
R = TypeVar("R")

# How many turns of the event loop a group waits before it is taken, so that the requests read
# in the same turn as the first one reach it too (one turn split most groups in two; the
# measurements: bench/HISTORY.md, "Measurements behind constants").
JOIN_TURNS = 3


class _Waiting(Generic[T, R]):
    def __init__(self) -> None:
        self.calls: list[tuple[T, asyncio.Future[R]]] = []
        self.task: asyncio.Task[None] | None = None


class Grouped(Generic[T, R]):
    """``await grouped(item)``: ``make(items)[i]`` for the group ``item`` went into, where
    ``make`` returns one answer or one exception per item, in order. A group holds items whose
    ``size`` adds up to at most ``limit`` (and at least one item)."""

    def __init__(
        self,
        name: str,
        make: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        size: Callable[[T], int] = lambda _: 1,
        limit: int = 64,
    ) -> None:
        self._make = make
        self._size = size
        self._limit = limit
        self._waiting: RunVar[_Waiting[T, R]] = RunVar(f"tiers_grouped_{name}")

    async def __call__(self, item: T) -> R:
        try:
            waiting = self._waiting.get()
        except LookupError:  # one list per event loop
            waiting = _Waiting()
            self._waiting.set(waiting)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        waiting.calls.append((item, future))
        if waiting.task is None:
            waiting.task = asyncio.create_task(self._groups(waiting))
        return await future

    async def _groups(self, waiting: _Waiting[T, R]) -> None:
        taken: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while waiting.calls:
                for _ in range(JOIN_TURNS):
                    await asyncio.sleep(0)
                taken = self._take(waiting.calls)
                answers: Sequence[R | BaseException]
                try:
                    answers = await self._make([item for item, _ in taken])
                except Exception as error:  # noqa: BLE001 - each call of the group gets it
                    answers = [error] * len(taken)
                for (_, future), answer in zip(taken, answers, strict=True):
                    if future.done():  # its request was cancelled (the client went away)
                        continue
                    if isinstance(answer, asyncio.CancelledError):
                        future.cancel()
                    elif isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
                taken = []
        except BaseException:  # the event loop is stopping: no call is left waiting
            for _, future in [*taken, *waiting.calls]:
                future.cancel()
            waiting.calls.clear()
            raise
        finally:
            waiting.task = None

    def _take(self, calls: list[tuple[T, asyncio.Future[R]]]) -> list[tuple[T, asyncio.Future[R]]]:
        """The next group, removed from ``calls``: the calls in order, up to the limit."""
        count, total = 1, self._size(calls[0][0])
        while count < len(calls) and total + self._size(calls[count][0]) <= self._limit:
            total += self._size(calls[count][0])
            count += 1
        taken = calls[:count]
        del calls[:count]
        return taken
