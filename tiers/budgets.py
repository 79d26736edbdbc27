"""Identifier budgets: probing limited by values, not by requests.

Whoever can pseudonymise freely can sweep a space of card or phone numbers. A rate of requests
does not bound that (one request can carry 100,000 values), so every action that computes
pseudonyms from identifiers charges the **identifiers** it handles to its client's budget:
``budget_identifiers_per_second`` and ``budget_identifiers_per_hour``, two token buckets that
refill continuously.

A call is admitted while neither bucket of its client is overdrawn; it then takes its
identifiers, possibly overdrawing them, which holds the client's next calls back until the
buckets refill (``identifier_budget``, HTTP 429 with the wait). A large batch or file is
therefore never refused for its size alone, and the budget still holds over any period. A file
or an exchange, whose identifiers are known only once it is read, is admitted the same way and
charged when it ends.

The budgets are of the clients of the API (:attr:`~tiers.auditing.Access.client_id`); the
operator on the host's command line has none. Like the request rate
(:mod:`tiers.ratelimit`), they are shared in the database on PostgreSQL: a client has one
budget across every worker and node of the deployment (each process takes identifiers a
twentieth of a second's budget at a time, :class:`~tiers.buckets.Reservoir`). On SQLite (one
host) they are kept in the memory of each worker process: with N workers a client can reach N
times the budget, so size the settings for one worker there. The access log counts the
identifiers of every call, whichever worker served it, and the ``volume`` alert
(:mod:`tiers.alerts`) reads them there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from errors import BudgetExhausted
from tiers.auditing import Access
from tiers.buckets import Buckets, Levels, MemoryBuckets, Reservoir

__all__ = ["BudgetExhausted", "IdentifierBudget"]


class IdentifierBudget:
    """Per-client buckets of identifiers, per second and per hour, in one process's memory or
    shared by every process (``buckets``, see :mod:`tiers.buckets`)."""

    def __init__(
        self,
        *,
        per_second: int,
        per_hour: int,
        clock: Callable[[], float] = time.monotonic,
        buckets: Buckets | None = None,
        chunk: int | None = None,
    ) -> None:
        # (capacity, refill per second) of each bucket
        self._buckets = ((float(per_second), float(per_second)), (float(per_hour), per_hour / 3600))
        self._full: Levels = (float(per_second), float(per_hour))
        self.store = buckets or MemoryBuckets(clock=clock)
        # Identifiers taken at a time from a shared bucket (tiers.buckets.Reservoir): a
        # twentieth of a second's budget.
        self._chunk = per_second // 20 if chunk is None else chunk
        self._reservoir = Reservoir(clock=clock)

    def _refilled(self, levels: Levels, elapsed: float) -> list[float]:
        return [
            min(capacity, level + elapsed * rate)
            for level, (capacity, rate) in zip(levels, self._buckets, strict=True)
        ]

    def admit(self, access: Access, identifiers: int = 0) -> None:
        """Admit a call of ``access`` and charge it ``identifiers``; raises
        :class:`BudgetExhausted` (charging nothing) while a bucket is overdrawn."""
        if access.client_id is None:
            return
        key = ("budget", access.client_id)
        chunk = self._chunk if self.store.blocking else 0
        if chunk and identifiers > 0 and self._reservoir.spend(key, identifiers):
            return  # taken from the shared bucket before, while it was not overdrawn

        def step(held: Levels, elapsed: float) -> tuple[Levels, tuple[float, float | None]]:
            levels = self._refilled(held, elapsed)
            waits = [
                -level / rate
                for level, (_, rate) in zip(levels, self._buckets, strict=True)
                if level < 0
            ]
            if waits:
                return (levels[0], levels[1]), (0.0, max(waits))
            # The call's identifiers (which may overdraw), and up to a chunk more if there is.
            extra = max(0.0, min(chunk - identifiers, min(levels) - identifiers))
            taken = identifiers + extra
            return (levels[0] - taken, levels[1] - taken), (extra, None)

        extra, wait = self.store.update(key, self._full, step)
        if wait is not None:
            raise BudgetExhausted(
                "the identifier budget of this client is spent; slow down", retry_after=wait
            )
        if extra > 0:
            self._reservoir.keep(key, extra)

    def charge(self, access: Access, identifiers: int) -> None:
        """Charge ``identifiers`` handled by an admitted call (a file's, once it is read)."""
        if access.client_id is None or identifiers <= 0:
            return
        key = ("budget", access.client_id)
        if self.store.blocking and self._reservoir.spend(key, identifiers):
            return

        def step(held: Levels, elapsed: float) -> tuple[Levels, None]:
            levels = self._refilled(held, elapsed)
            return (levels[0] - identifiers, levels[1] - identifiers), None

        self.store.update(key, self._full, step)
