"""The levels of token buckets: in one process's memory, or shared in the database.

A bucket is a few levels (tokens left) and the time they were computed. :meth:`Buckets.update`
hands the levels and the time elapsed since to a pure step, which returns the new levels and
an answer; the store keeps the new levels. :class:`MemoryBuckets` serves one process (SQLite:
one host); :class:`DatabaseBuckets` serves every worker of every node of a PostgreSQL
deployment, one row a bucket, updated under the row's lock, with the wall clock (nodes are
expected to keep NTP time; a clock a little off gives a little more or less refill, never a
negative one). A bucket's key is stored as its SHA-256: no address or name is.

A transaction a call, all of one client's calls queued on one row, would cost more than the
call: a process therefore takes units from a shared bucket a chunk at a time and spends them
from its :class:`Reservoir`, going back to the database when it runs out.
"""

from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import TypeVar

from sqlalchemy import Engine

from tiers.storage import buckets as buckets_repo

__all__ = ["Buckets", "DatabaseBuckets", "Levels", "MemoryBuckets", "Reservoir", "Step"]

T = TypeVar("T")
Levels = tuple[float, float]
# (levels, seconds since they were computed) -> (new levels, answer)
Step = Callable[[Levels, float], tuple[Levels, T]]


class Buckets(ABC):
    """Where the levels of buckets are kept."""

    # Whether an update waits on I/O (an async caller then runs it in a thread).
    blocking = False

    @abstractmethod
    def update(self, key: Hashable, full: Levels, step: Step[T]) -> T:
        """Apply ``step`` to bucket ``key`` (``full`` when it is new); returns its answer."""


class MemoryBuckets(Buckets):
    """Buckets of one process. Past ``max_keys`` buckets, they all start again full."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._held: dict[Hashable, tuple[Levels, float]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def update(self, key: Hashable, full: Levels, step: Step[T]) -> T:
        now = self._clock()
        with self._lock:
            if len(self._held) >= self._max_keys and key not in self._held:
                self._held.clear()
            levels, last = self._held.get(key, (full, now))
            levels, answer = step(levels, max(0.0, now - last))
            self._held[key] = (levels, now)
        return answer


class DatabaseBuckets(Buckets):
    """Buckets in ``limit_buckets``, shared by every process on the database (PostgreSQL)."""

    blocking = True

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def update(self, key: Hashable, full: Levels, step: Step[T]) -> T:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()
        with self._engine.begin() as connection:
            levels, last = buckets_repo.lock(connection, key=digest, full=full, now=self._clock())
            # Read after the lock (another node may have held it), never before the last time.
            now = max(self._clock(), last)
            levels, answer = step(levels, now - last)
            buckets_repo.save(connection, key=digest, levels=levels, now=now)
        return answer


class Reservoir:
    """Units one process took from a shared bucket ahead of need, spent without the database.

    Every unit spent was taken from the shared bucket, so the deployment never admits more
    than the bucket allows; a process holds at most one chunk it has not spent, for at most
    ``ttl`` seconds (then it lapses, and is not given back: the bucket refills meanwhile).
    """

    def __init__(self, *, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._held: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def spend(self, key: Hashable, units: float) -> bool:
        """Spend ``units`` held for ``key`` if there are that many, unlapsed."""
        now = self._clock()
        with self._lock:
            held, until = self._held.get(key, (0.0, now))
            if now >= until or held < units:
                return False
            self._held[key] = (held - units, until)
            return True

    def keep(self, key: Hashable, units: float) -> None:
        """Hold ``units`` more for ``key`` (those held already, if unlapsed, are kept too)."""
        now = self._clock()
        with self._lock:
            held, until = self._held.get(key, (0.0, now))
            self._held[key] = ((held if now < until else 0.0) + units, now + self._ttl)
