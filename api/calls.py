"""Where a route runs its core call: on the event loop or in the thread pool.

FastAPI runs plain functions in a thread pool. For a call of a millisecond that is the larger
part of the cost: under load, a dozen pool threads and the event loop contend for the
interpreter lock, and a single-value call served half as many requests a second as the same
call run on the event loop (measured, SQLite, one worker). A short call therefore runs on the
event loop when it cannot wait there: the database is embedded (SQLite), and at this instant no
thread of this process and no other process is writing to it (see
:meth:`tiers.deployment.Deployment.writer_if_free`). Anything else, and every call that can take
long (large batches, files, exchanges, audit searches), runs in the thread pool as before.

The check of other processes is a try of their lock, released at once: one that takes the lock
in the few microseconds between that try and the call's own transaction makes the event loop
wait for it, as a pool thread would have waited (at most ``SQLITE_BUSY_MS``, then 503).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool

from tiers.deployment import Deployment

__all__ = ["SHORT_CALL_VALUES", "call"]

# A batch of up to this many values is a short call (about a millisecond at most on SQLite).
SHORT_CALL_VALUES = 100

R = TypeVar("R")


async def call(deployment: Deployment, function: Callable[[], R], *, short: bool) -> R:
    """``function()``, a core call: on the event loop if it is ``short`` and the database is
    free at once, else in the thread pool."""
    if short:
        with deployment.writer_if_free() as free:
            if free:
                return function()
    return await run_in_threadpool(function)
