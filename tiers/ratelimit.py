"""A token bucket per client (or per address), in the memory of one worker process.

Each of N workers enforces the rate on its own, so a client can reach N times the configured rate
across a pool: size the setting for one worker. Every refusal is recorded in the access log, so
that a client hammering the service (a dictionary attack on low-entropy identifiers, one value
at a time) shows there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

from errors import RateLimited

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()
        # Keys held at most: past it, the buckets start again full (callers from that many
        # addresses at once get a burst each anyway).
        self._max_keys = max_keys

    def check(self, client_id: Hashable) -> None:
        """Take one token for ``client_id``; raises :class:`RateLimited` when none is left."""
        now = self._clock()
        with self._lock:
            if len(self._buckets) >= self._max_keys and client_id not in self._buckets:
                self._buckets.clear()
            tokens, last = self._buckets.get(client_id, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[client_id] = (tokens, now)
                raise RateLimited(
                    "too many requests; slow down", retry_after=(1.0 - tokens) / self._rate
                )
            self._buckets[client_id] = (tokens - 1.0, now)
