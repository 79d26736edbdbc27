"""The fast path of file tokenisation: a CSV stream cut into blocks of whole records, each block
tokenised by a worker process, the results applied in file order.

A block boundary is only ever put where no CSV parser could disagree about it: at a newline, in a
stretch of the file with no quote, no NUL and no lone carriage return. In such a stretch every
newline ends a record and every record is one physical line, so a block's line numbers are known
before it is parsed. From the first byte that is not of that kind to the end of the file, the file
is read serially, by the same code (:mod:`tiers._file_rows`), so the output is byte for byte that of
the simple path (``tests/tiers/test_fastpath.py`` checks it on random files, in any block size and
worker count).

Workers are forked from the calling process: they inherit the prepared keys in memory, and no key is
ever serialised to them. Forking is only done from the main thread (the command line and the
benchmarks); in the service's worker threads the blocks are processed in the calling thread. At most
``2 × workers`` blocks are in flight, so memory does not grow with the file.

The interface, used by :mod:`tiers.files` only: :class:`RecordBlocks` cuts the stream,
:class:`BlockWork` is what a worker does to a block (:class:`BlockResult`), :func:`in_order` runs it
on the workers and hands the results back in file order. The plain path reads as if this module did
not exist: ``block_bytes=0`` never enters it.
"""

from __future__ import annotations

import csv
import gc
import io
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from typing import IO, TypeVar

from errors import InvalidFile, InvalidIdentifier
from tiers import _subject_index as subject_index
from tiers._csvio import FIELD_SIZE_LIMIT, Chained, csv_records
from tiers._file_rows import (
    Plan,
    column_name,
    neutralise_formula,
    output_row,
    registrations,
    row_problems,
)
from tiers.tokenisation import Tokeniser

__all__ = [
    "BLOCK_BYTES",
    "COLUMN_SLICE",
    "BlockResult",
    "BlockWork",
    "RecordBlocks",
    "in_order",
]

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
        return io.BufferedReader(Chained(self._carry, self._raw))


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
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        pending: deque[AsyncResult[R]] = deque()
        for first_line, block in blocks:
            pending.append(pool.apply_async(_run, (first_line, block)))  # type: ignore[arg-type]
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        # Done: the workers end on the pool's sentinels. Terminating them instead (as leaving
        # a ``with Pool`` does) can kill one that holds the task queue's lock, and the other
        # then never ends: the job hung at its very end (seen once in CI).
        pool.close()
        pool.join()
    finally:
        pool.terminate()  # after join, a no-op; on an error or a stop, the workers go now
        _WORK = None


# Lines of a block read column by column at a time: large enough for the batches to pay, small
# enough that a worker holds a few MB of rows and tokens, not a whole block's.
COLUMN_SLICE = 2048
# What a token is written with: a domain name ([a-z][a-z0-9-]), ".v", its version, "." and base32.
_TOKEN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


@dataclass(slots=True)
class BlockResult:
    bytes_in: int = 0
    rows_in: int = 0
    rows_out: int = 0
    output: str = ""
    rejects: list[tuple[int, list[tuple[str, str]]]] = field(default_factory=list)
    registrations: list[tuple[bytes, bytes, str]] = field(default_factory=list)
    # the base pseudonyms of its accepted identifiers while it is tokenised, then their
    # references in the subject index (made in the worker, handed back instead of the bases)
    bases: list[bytes] = field(default_factory=list)
    refs: subject_index.Block | None = None
    error: tuple[str, str] | None = None  # (message, code) of an error that fails the file


@dataclass(frozen=True, slots=True, repr=False)
class BlockWork:
    """Tokenise one block of whole lines: what a fast-path worker runs (holds the keys).

    A block that is valid UTF-8 and has no line longer than the field size limit is read
    column by column (:meth:`_by_column`); any other block row by row, by the code of the
    serial path (:meth:`by_row`). Both give what the serial path gives, byte for byte.
    """

    plan: Plan
    width: int
    tokeniser: Tokeniser
    delimiter: str
    register: bool
    index_secret: bytes  # the subject index's references are made here, in parallel

    def __call__(self, block: bytes, lines_before: int) -> BlockResult:
        result = BlockResult(bytes_in=len(block))
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:  # some row is rejected with bad_encoding
            return self.by_row(block, lines_before, result)
        # A fast block has no quote, no NUL, and no carriage return but before a newline
        # (tiers.fastpath): each line is one record, its fields split at the delimiter.
        lines = text.replace("\r\n", "\n").split("\n")
        lines.pop()  # after the block's last newline
        if len(text) > FIELD_SIZE_LIMIT and max(map(len, lines)) > FIELD_SIZE_LIMIT:
            return self.by_row(block, lines_before, result)  # the parser's error, as serially
        delimiter = self.delimiter
        outputs = []
        for start in range(0, len(lines), COLUMN_SLICE):  # what is in memory at once
            records = [
                (lines_before + number, line.split(delimiter))
                for number, line in enumerate(lines[start : start + COLUMN_SLICE], start + 1)
                if line  # a blank line is no record
            ]
            outputs.append(self._by_column(records, result))
        result.output = "".join(outputs)
        return self._sealed(result)

    def by_row(self, block: bytes, lines_before: int, result: BlockResult) -> BlockResult:
        text = io.TextIOWrapper(
            io.BytesIO(block), encoding="utf-8", errors="surrogateescape", newline=""
        )
        reader = csv.reader(text, delimiter=self.delimiter, strict=False)
        return self.of_records(csv_records(reader, lines_before), result)

    def of_records(
        self, records: Iterable[tuple[int, list[str]]], result: BlockResult
    ) -> BlockResult:
        """``records`` (numbered rows) worked on one by one, by the serial path's code; an
        :class:`InvalidFile` raised while they are read is kept in ``result.error``."""
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, delimiter=self.delimiter)
        try:
            for line, row in records:
                result.rows_in += 1
                problems, tokens = row_problems(row, self.plan, self.width, self.tokeniser)
                if problems:
                    result.rejects.append((line, problems))
                    continue
                writer.writerow(output_row(self.plan, row, tokens))
                result.rows_out += 1
                result.bases += [base for base, _, _ in tokens]
                if self.register:
                    result.registrations.extend(registrations(self.plan, tokens))
        except InvalidFile as error:
            result.error = (error.message, error.code)
        result.output = buffer.getvalue()
        return self._sealed(result)

    def _sealed(self, result: BlockResult) -> BlockResult:
        """``result`` with its identifiers made references of the subject index."""
        result.refs = subject_index.block_of(self.index_secret, result.bases)
        result.bases = []
        return result

    def _by_column(self, records: list[tuple[int, list[str]]], result: BlockResult) -> str:
        """Records of valid UTF-8 with no NUL: no cell can be rejected for its characters, so
        only the field count and the identifiers are checked, each column in one batch. Adds
        the records' counts, rejects and registrations to ``result``; returns their output."""
        plan = self.plan
        result.rows_in += len(records)
        fitting = []
        rejects: list[tuple[int, list[tuple[str, str]]]] = []
        for line, row in records:
            if len(row) == self.width:
                fitting.append((line, row))
            else:
                rejects.append((line, [("", "field_count")]))
        columns = []
        problems: dict[int, list[tuple[str, str]]] = {}
        for position, kind in plan.identifier_positions:
            tokens = self.tokeniser.tokenise_many(kind, [row[position] for _, row in fitting])
            for index, token in enumerate(tokens):
                if isinstance(token, InvalidIdentifier):
                    problem = (column_name(plan, position), token.code)
                    problems.setdefault(index, []).append(problem)
            columns.append(tokens)
        if problems:
            rejects += [(fitting[index][0], found) for index, found in problems.items()]
            rejects.sort(key=lambda reject: reject[0])  # in line order, as serially
            accepted = [index for index in range(len(fitting)) if index not in problems]
            fitting = [fitting[index] for index in accepted]
            columns = [[column[index] for index in accepted] for column in columns]
        result.rejects += rejects
        accepted_tokens: list[list[tuple[bytes, bytes, str]]] = columns  # type: ignore[assignment]
        result.rows_out += len(fitting)
        rows = zip(*accepted_tokens, strict=True)
        bases = [base for row_tokens in rows for base, _, _ in row_tokens]
        result.bases += bases
        if self.register:
            kinds = [kind.name for _, kind in plan.identifier_positions]
            result.registrations += [
                (base, mac, kind)
                for row_tokens in zip(*accepted_tokens, strict=True)
                for (base, mac, _), kind in zip(row_tokens, kinds, strict=True)
            ]
        return self._output(fitting, accepted_tokens)

    def _output(
        self, fitting: list[tuple[int, list[str]]], columns: list[list[tuple[bytes, bytes, str]]]
    ) -> str:
        """The output lines of accepted records, built column by column (as :func:`output_row`
        builds a row)."""
        positions = [position for position, _ in self.plan.identifier_positions]
        tokens_at = dict(zip(positions, columns, strict=True))
        cells: list[list[str]] = []
        for position in self.plan.output_positions:
            tokens = tokens_at.get(position)
            if tokens is not None:
                cells.append([text for _, _, text in tokens])
                continue
            cells.append([neutralise_formula(row[position]) for _, row in fitting])
        if self.delimiter in _TOKEN_CHARACTERS or self.delimiter == "'":
            buffer = io.StringIO(newline="")
            csv.writer(buffer, delimiter=self.delimiter).writerows(zip(*cells, strict=True))
            return buffer.getvalue()
        # What csv.writer writes, a fifteenth of the cost: it quotes a cell only when the cell
        # holds the delimiter, a quote, a carriage return or a newline (or is a record's only
        # cell and empty). Here none can: a kept cell was split at the delimiter from a line of
        # a fast block (no quote, no carriage return once line ends are made "\n"); a token or
        # a neutralised cell's "'" is not the delimiter (the test just above); every record has a
        # token, which is never empty.
        join = self.delimiter.join
        return "".join([join(record) + "\r\n" for record in zip(*cells, strict=True)])
