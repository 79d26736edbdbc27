"""The fast path of file tokenisation: a CSV stream cut into blocks of whole records, each
block tokenised by a worker process, the results applied in file order.

A block boundary is only ever put where no CSV parser could disagree about it: at a newline, in
a stretch of the file with no quote, no NUL and no lone carriage return. In such a stretch every
newline ends a record and every record is one physical line, so a block's line numbers are known
before it is parsed. From the first byte that is not of that kind to the end of the file, the
file is read serially, by the same code (:mod:`tiers.files`), so the output is byte for byte that
of the simple path (``tests/tiers/test_fastpath.py`` checks it on random files, in any block size
and worker count).

Workers are forked from the calling process: they inherit the prepared keys in memory, and no
key is ever serialised to them. Forking is only done from the main thread (the command line and
the benchmarks); in the service's worker threads the blocks are processed in the calling thread.
At most ``2 × workers`` blocks are in flight, so memory does not grow with the file.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.pool import AsyncResult
from typing import IO, Any, TypeVar

__all__ = ["BLOCK_BYTES", "RecordBlocks", "collector_paused", "in_order"]

BLOCK_BYTES = 1 << 20
R = TypeVar("R")

# The work function of the current run, inherited by forked workers (never pickled).
_WORK: Callable[[bytes, int], object] | None = None


def _first_unsafe(data: bytes) -> int:
    """Index of the first byte from which blocks can no longer be cut blind (-1: none): a
    quote, a NUL, or a carriage return not followed by a newline (one at the very end counts:
    its newline, if any, has not been read yet)."""
    found = [i for i in (data.find(b'"'), data.find(b"\x00")) if i != -1]
    carriage = data.find(b"\r")
    if carriage != -1 and data.count(b"\r") == data.count(b"\r\n"):
        carriage = -1  # CRLF line ends only (the common case), found without a Python loop
    while carriage != -1 and data[carriage + 1 : carriage + 2] == b"\n":
        carriage = data.find(b"\r", carriage + 1)
    if carriage != -1:
        found.append(carriage)
    return min(found) if found else -1


class RecordBlocks:
    """Cuts a byte stream into blocks of whole, quote-free lines; the rest of the stream, from
    the first byte that needs a real parser, is left to :meth:`rest`.

    ``lines`` is the number of physical lines handed out so far (header included). A line
    longer than a few blocks also ends the fast part: the serial reader then applies the field
    size limit, and memory stays bounded.
    """

    def __init__(self, raw: IO[bytes], block_bytes: int = BLOCK_BYTES) -> None:
        self._raw = raw
        self._block = block_bytes
        self._carry = b""
        self._serial = False
        self._eof = False
        self.lines = 0

    def _fill(self) -> None:
        if not self._eof:
            data = self._raw.read(self._block)
            self._eof = not data
            self._carry += data

    def _cut(self, *, first_line_only: bool) -> bytes | None:
        """The next safe stretch of whole lines (or only the first line), else None and from
        now on the rest is read serially."""
        if self._serial:
            return None
        if len(self._carry) < self._block:
            self._fill()
        while True:
            data = self._carry
            unsafe = _first_unsafe(data)
            safe = data if unsafe == -1 else data[:unsafe]
            cut = (safe.find(b"\n") if first_line_only else safe.rfind(b"\n")) + 1
            if cut:
                self._carry = data[cut:]
                return data[:cut]
            if unsafe != -1 or self._eof or len(data) > 4 * self._block:
                self._serial = True
                return None
            self._fill()  # a line longer than a block: read on

    def header(self) -> bytes | None:
        """The first line, if it is safe (else None, and the whole file is read serially)."""
        line = self._cut(first_line_only=True)
        if line is not None:
            self.lines = 1
        return line

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """``(lines before the block, block)``, in order."""
        while (block := self._cut(first_line_only=False)) is not None:
            first = self.lines
            self.lines += block.count(b"\n")
            yield first, block

    def rest(self) -> IO[bytes]:
        """What is left of the stream, to be read serially (after iteration stopped)."""
        return io.BufferedReader(_Chained(self._carry, self._raw))


class _Chained(io.RawIOBase):
    """``head`` then ``tail``, as one readable raw stream (the caller owns ``tail``)."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._tail.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector held off while one block is worked on.

    A block allocates tens of thousands of lists and tuples that live until its end, and each
    collection the allocations set off walks them all again: a fifth of the cost of a block
    (15.8 against 19.7 µs a row, measured). Their memory is freed by reference counting when
    the block is done; the collector runs again afterwards for any cycle. The switch is
    process-wide: a thread of the service that works on a block holds the collector off for
    the others too, for the fraction of a second a block takes.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _run(first_line: int, block: bytes) -> object:
    if _WORK is None:  # pragma: no cover - set by in_order before the pool forks
        raise RuntimeError("no work function in this worker")
    with collector_paused():
        return _WORK(block, first_line)


def in_order(
    work: Callable[[bytes, int], R], blocks: Iterator[tuple[int, bytes]], workers: int
) -> Iterator[R]:
    """Apply ``work(block, lines_before)`` to each block of ``blocks``, results in block order,
    on ``workers`` forked processes (or in this thread when ``workers`` is 1 or this is not
    the main thread)."""
    if workers <= 1 or threading.current_thread() is not threading.main_thread():
        for first_line, block in blocks:
            with collector_paused():
                result = work(block, first_line)
            yield result
        return
    global _WORK  # noqa: PLW0603 - handed to the forked workers by inheritance
    _WORK = work
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: deque[AsyncResult[R]] = deque()
            for first_line, block in blocks:
                pending.append(pool.apply_async(_run, (first_line, block)))  # type: ignore[arg-type]
                if len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    finally:
        _WORK = None
