"""Where a route runs its core call: on the event loop or in the thread pool.

FastAPI runs plain functions in a thread pool. For a call of a millisecond that is the larger
part of the cost: under load, a dozen pool threads and the event loop contend for the
interpreter lock, and a single-value call served half as many requests a second as the same
call run on the event loop (bench/HISTORY.md). A short call therefore runs on the
event loop when it will not wait there: the database is embedded (SQLite), and at this instant no
thread of this process and no other process is writing to it (see
:meth:`tiers.deployment.Deployment.writer_if_free`). Anything else, and every call that can take
long (large batches, files, exchanges, audit searches), runs in the thread pool as before.

A short call that cannot run on the event loop (PostgreSQL; SQLite while another writes) runs
in the pool, but under a limit of its own of ``SHORT_CALL_THREADS`` at a time per process: a
few threads busy with short calls served more of them than forty (bench/HISTORY.md,
"Measurements behind constants"). Long calls are not counted against it, so a file or a large
batch never holds a short call up by taking its threads.

The check of other processes is a try of their lock, released at once: one that takes the lock
in the few microseconds between that try and the call's own transaction makes the event loop
wait for it, as a pool thread would have waited (at most ``SQLITE_BUSY_MS``, then 503).

Short ``pseudonymise`` calls and single-key link resolutions are made in groups
(:func:`pseudonymise_grouped`, :func:`resolve_grouped`; a group commit, see
:mod:`api._grouping`): in one transaction, by :func:`tiers.tokenisation.pseudonymise_together`
or :func:`tiers.resolution.resolve_together`. Each call still gets its own results and its
own access-log entry, but the transaction, the log head's lock and update, the key look-ups and
the inserts are shared: at sixteen calls a group, a call's core work took a fifth of its time
alone (in process, SQLite). A ``pseudonymise`` call that would be refused before its
transaction (another domain, a role without the right, an unknown kind:
:func:`tiers.tokenisation.may_go_together`) is made alone from the start, and the others
together. If any call of a group is refused all the same (an unknown domain or key), or the
group fails, nothing of it is kept and each of its calls is made alone, as it would have been
without the others, recording its own outcome.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import anyio
from anyio.lowlevel import RunVar
from fastapi.concurrency import run_in_threadpool

from api._grouping import Grouped
from errors import InvalidIdentifier, TiersError
from tiers.auditing import Access
from tiers.deployment import Deployment
from tiers.resolution import Resolution, resolve, resolve_together
from tiers.tokenisation import (
    ValuesCall,
    may_go_together,
    pseudonymise_together,
    pseudonymise_values,
)

__all__ = [
    "SHORT_CALL_THREADS",
    "SHORT_CALL_VALUES",
    "call",
    "pseudonymise_grouped",
    "pseudonymise_one",
    "resolve_grouped",
    "short_call_in_pool",
]

# A batch of up to this many values is a short call (about a millisecond at most on SQLite).
SHORT_CALL_VALUES = 100

_log = logging.getLogger("tiers.api")

# The most values a group of short pseudonymise calls holds: a group made on the event loop
# holds the loop up for as long as it takes (about 2 ms for 16 single values, SQLite).
GROUP_VALUES = 256

# How many short calls of one process run in the thread pool at a time.
SHORT_CALL_THREADS = 2

# One limit per event loop (anyio's own default limit is kept the same way).
_SHORT_THREADS: RunVar[anyio.CapacityLimiter] = RunVar("tiers_short_call_threads")

R = TypeVar("R")
T = TypeVar("T")


async def call(deployment: Deployment, function: Callable[[], R], *, short: bool) -> R:
    """``function()``, a core call: on the event loop if it is ``short`` and the database is
    free at once, else in the thread pool (within the short calls' limit if ``short``)."""
    if not short:
        return await run_in_threadpool(function)
    with deployment.writer_if_free() as free:
        if free:
            return function()
    return await short_call_in_pool(function)


async def short_call_in_pool(function: Callable[[], R]) -> R:
    """``function()`` in the thread pool, within the short calls' limit."""
    try:
        limiter = _SHORT_THREADS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(SHORT_CALL_THREADS)
        _SHORT_THREADS.set(limiter)
    return await anyio.to_thread.run_sync(function, limiter=limiter)


Answer = list[str | InvalidIdentifier]


def grouped_calls(
    name: str,
    together: Callable[[Deployment, list[T]], Sequence[R]],
    alone: Callable[[Deployment, T], R],
    *,
    size: Callable[[T], int] = lambda _: 1,
    limit: int = 64,
    eligible: Callable[[T], bool] = lambda _: True,
) -> Grouped[tuple[Deployment, T], R]:
    """Short core calls made in groups: ``together(deployment, items)`` in one transaction
    (refusing or failing as a whole, with nothing recorded), or else ``alone`` for each item,
    each recording its own outcome. An item that is not ``eligible`` (one ``together`` would
    refuse before its transaction) is made alone from the start, and the others together.
    Each runs as a short call (:func:`call`)."""

    async def make(calls: list[tuple[Deployment, T]]) -> Sequence[R | BaseException]:
        deployment = calls[0][0]  # a service has one; were there several, each call goes alone
        grouped = [
            n for n, (owner, item) in enumerate(calls) if owner is deployment and eligible(item)
        ]
        answers: dict[int, R | BaseException] = {}
        if len(grouped) > 1:
            items = [calls[n][1] for n in grouped]
            try:
                made = await call(
                    deployment, functools.partial(together, deployment, items), short=True
                )
                answers.update(zip(grouped, made, strict=True))
            except Exception as error:  # noqa: BLE001 - a refusal or a failure: each alone
                kind = type(error).__name__
                _log.debug(
                    "a group of %d %s calls is made call by call (%s)", len(items), name, kind
                )
        rest = [n for n in range(len(calls)) if n not in answers]
        each = [
            call(owner, functools.partial(alone, owner, item), short=True)
            for owner, item in (calls[n] for n in rest)
        ]
        answers.update(zip(rest, await asyncio.gather(*each, return_exceptions=True), strict=True))
        return [answers[n] for n in range(len(calls))]

    return Grouped(name, make, size=lambda pair: size(pair[1]), limit=limit)


# The core functions are looked up when a group is made (a test's spy on them sees the calls).


def _pseudonymise_together(deployment: Deployment, requests: list[ValuesCall]) -> list[Answer]:
    return pseudonymise_together(deployment, requests)


def pseudonymise_one(deployment: Deployment, request: ValuesCall) -> Answer:
    """:func:`~tiers.tokenisation.pseudonymise_values` of one request, alone."""
    return pseudonymise_values(
        deployment,
        access=request.access,
        domain=request.domain,
        kind=request.kind,
        values=request.values,
        register=request.register,
    )


_PSEUDONYMISE = grouped_calls(
    "pseudonymise",
    _pseudonymise_together,
    pseudonymise_one,
    size=lambda request: len(request.values),
    limit=GROUP_VALUES,
    eligible=may_go_together,
)


async def pseudonymise_grouped(deployment: Deployment, request: ValuesCall) -> Answer:
    """:func:`~tiers.tokenisation.pseudonymise_values` of a short call, in a group with the
    calls that wait beside it (see above)."""
    return await _PSEUDONYMISE((deployment, request))


Resolved = list[Resolution | TiersError]


def _resolve_together(deployment: Deployment, requests: list[tuple[Access, str]]) -> list[Resolved]:
    return resolve_together(deployment, requests)


def _resolve_alone(deployment: Deployment, request: tuple[Access, str]) -> Resolved:
    access, linking_key = request
    return resolve(deployment, access=access, linking_keys=[linking_key], strict=True)


_RESOLVE = grouped_calls("link_resolve", _resolve_together, _resolve_alone)


async def resolve_grouped(deployment: Deployment, access: Access, linking_key: str) -> Resolution:
    """:func:`~tiers.resolution.resolve` (strict) of one hub linking key, in a group with the
    calls that wait beside it (see above)."""
    (result,) = await _RESOLVE((deployment, (access, linking_key)))
    assert isinstance(result, Resolution)  # strict: an unknown key was raised
    return result
