"""A token bucket per client (or per address).

The buckets are in the memory of one process (:class:`~tiers.buckets.MemoryBuckets`) unless
they are given a store shared by every process: a service on PostgreSQL shares the buckets of
its clients in the database (:class:`~tiers.buckets.DatabaseBuckets`), so that a client gets
the configured rate from the whole deployment, whatever the number of workers and nodes (each
process takes tokens a few at a time, :class:`~tiers.buckets.Reservoir`). The
door's per-address buckets (:mod:`api.gate`) stay in each process: they guard that process.
Every refusal is recorded in the access log, so that a client hammering the service (a
dictionary attack on low-entropy identifiers, one value at a time) shows there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from errors import RateLimited
from tiers.buckets import Buckets, Levels, MemoryBuckets, Reservoir, Step

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
        chunk: int | None = None,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        # Keys held at most in memory: past it, the buckets start again full (callers from
        # that many addresses at once get a burst each anyway).
        self.buckets = buckets or MemoryBuckets(clock=clock, max_keys=max_keys)
        # Tokens taken at a time from a shared bucket (tiers.buckets.Reservoir): a twentieth
        # of a second's rate, at most an eighth of the burst.
        self._chunk = chunk or max(1, min(int(rate / 20), burst // 8))
        self._reservoir = Reservoir(clock=clock)

    def spend_held(self, client_id: Hashable) -> bool:
        """Take one token this process holds already for ``client_id`` (no I/O); False when
        :meth:`check` must be called."""
        return self.buckets.blocking and self._reservoir.spend(("rate", client_id), 1)

    def check(self, client_id: Hashable) -> None:
        """Take one token for ``client_id``; raises :class:`RateLimited` when none is left."""
        key = ("rate", client_id)
        chunk = self._chunk if self.buckets.blocking else 1
        if chunk > 1 and self._reservoir.spend(key, 1):
            return
        taken, wait = self.buckets.update(key, (self._burst, 0.0), self._step(chunk))
        if wait is not None:
            raise RateLimited("too many requests; slow down", retry_after=wait)
        if taken > 1:
            self._reservoir.keep(key, taken - 1)

    def _step(self, chunk: int) -> Step[tuple[int, float | None]]:
        """Take up to ``chunk`` tokens (at least one, or refuse with the wait for one)."""

        def step(levels: Levels, elapsed: float) -> tuple[Levels, tuple[int, float | None]]:
            tokens = min(self._burst, levels[0] + elapsed * self._rate)
            if tokens < 1.0:
                return (tokens, 0.0), (0, (1.0 - tokens) / self._rate)
            taken = min(chunk, int(tokens))
            return (tokens - taken, 0.0), (taken, None)

        return step
