"""A token bucket per client (or per address).

The buckets are in the memory of one process (:class:`~tiers.buckets.MemoryBuckets`) unless
they are given a store shared by every process: a service on PostgreSQL shares the buckets of
its clients in the database (:class:`~tiers.buckets.DatabaseBuckets`), so that a client gets
the configured rate from the whole deployment, whatever the number of workers and nodes. The
door's per-address buckets (:mod:`api.gate`) stay in each process: they guard that process.
Every refusal is recorded in the access log, so that a client hammering the service (a
dictionary attack on low-entropy identifiers, one value at a time) shows there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from errors import RateLimited
from tiers.buckets import Buckets, Levels, MemoryBuckets

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        buckets: Buckets | None = None,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        # Keys held at most in memory: past it, the buckets start again full (callers from
        # that many addresses at once get a burst each anyway).
        self.buckets = buckets or MemoryBuckets(clock=clock, max_keys=max_keys)

    def check(self, client_id: Hashable) -> None:
        """Take one token for ``client_id``; raises :class:`RateLimited` when none is left."""
        wait = self.buckets.update(("rate", client_id), (self._burst, 0.0), self._step)
        if wait is not None:
            raise RateLimited("too many requests; slow down", retry_after=wait)

    def _step(self, levels: Levels, elapsed: float) -> tuple[Levels, float | None]:
        tokens = min(self._burst, levels[0] + elapsed * self._rate)
        if tokens < 1.0:
            return (tokens, 0.0), (1.0 - tokens) / self._rate
        return (tokens - 1.0, 0.0), None
