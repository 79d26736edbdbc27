"""A per-client token bucket, in the memory of one worker process.

Each of N workers enforces the rate on its own, so a client can reach N times the configured rate
across a pool: size the setting for one worker. Every refusal is recorded in the access log, so
that a client hammering the service (a dictionary attack on low-entropy identifiers, one value
at a time) shows there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tiers.errors import RateLimited

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, client_id: int) -> None:
        """Take one token for ``client_id``; raises :class:`RateLimited` when none is left."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(client_id, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[client_id] = (tokens, now)
                raise RateLimited(
                    "too many requests; slow down", retry_after=(1.0 - tokens) / self._rate
                )
            self._buckets[client_id] = (tokens - 1.0, now)
