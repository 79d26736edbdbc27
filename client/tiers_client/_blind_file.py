"""A CSV or Parquet file tokenised in blind mode, on the partner's machine: read by batches of
rows, each identifier normalised and blinded here, only blinded elements sent, the proofs
checked, the pseudonyms written in place of the identifiers.

The output keeps the columns named (identifiers and kept ones) in the file's order and the
file's delimiter, in UTF-8 with CRLF line ends, as the service writes a tokenised file. It is
written beside its target and renamed into place once complete (an output named ``.parquet`` is
written as Parquet then, every column as text); a row with a problem goes to the rejects file
(``line,column,code``, never a value) instead. Any failure (the service, a proof, the file)
leaves no output at all.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import re
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tiers_client._parquet import csv_export, is_parquet, written_as
from tiers_client._transfer import Progress, atomic_target
from tiers_client.blind import BATCH, Blinded, blind_batch
from tiers_client.identifiers import KINDS
from tiers_client.models import BlindEvaluation, BlindKeys, ValueRefused

if TYPE_CHECKING:
    from tiers_client._client import Client

__all__ = ["BlindFileError", "BlindFileReport", "tokenise_blind"]

_DELIMITERS = (",", ";", "\t", "|")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+([.,][0-9]+)?")


class BlindFileError(ValueError):
    """A file that cannot be tokenised as asked: ``code`` says why (never a value of it)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class BlindFileReport:
    rows_in: int
    rows_out: int
    rows_rejected: int
    output: str
    rejects: str


@dataclass(frozen=True, slots=True)
class _Plan:
    header: list[str]  # the output's
    positions: list[int]  # each output column's place in the input
    kinds: dict[int, str]  # input place of each identifier column -> its kind
    width: int


def _plan(header: list[str], columns: Sequence[str], keep: Sequence[str]) -> _Plan:
    if len(set(header)) != len(header):
        raise BlindFileError("the header names a column twice", "duplicate_column")
    specs = []
    for n, spec in enumerate(columns, start=1):
        name, _, kind = spec.partition("=")
        if not name or kind not in KINDS:
            raise BlindFileError(f"column number {n}: expected NAME=KIND", "bad_column")
        specs.append((name, kind))
    names = [name for name, _ in specs]
    if not specs:
        raise BlindFileError("name at least one identifier column", "no_columns")
    if len(set(names)) != len(names) or set(names) & set(keep):
        raise BlindFileError("a column is named twice", "column_named_twice")
    for option, listed in (("column", names), ("keep", keep)):
        for n, name in enumerate(listed, start=1):
            if name not in header:
                raise BlindFileError(
                    f"{option} number {n} names no column of the file's header", "unknown_column"
                )
    wanted = set(names) | set(keep)
    positions = [i for i, name in enumerate(header) if name in wanted]
    kinds = {header.index(name): kind for name, kind in specs}
    return _Plan([header[i] for i in positions], positions, kinds, len(header))


def _delimiter(header_line: str) -> str:
    outside = header_line.split('"')[::2]
    counts = {d: sum(part.count(d) for part in outside) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _kept(cell: str) -> str:
    """A kept cell a spreadsheet would run as a formula gets a leading ``'``."""
    if cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


class _Counting(io.RawIOBase):
    """A byte stream that counts what is read from it (the progress of a file)."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self.inner = inner
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(target))
        target[: len(data)] = data
        self.done += len(data)
        return len(data)


@dataclass(frozen=True, slots=True)
class _Source:
    header: list[str]
    records: Iterator[tuple[int, list[str]]]  # each record after the header, with its line
    delimiter: str  # the output keeps it
    counting: _Counting
    total: int | None  # the size to read, when known


@contextlib.contextmanager
def _rows(source: Path, delimiter: str | None, encoding: str) -> Iterator[_Source]:
    """The file opened as CSV (a Parquet file as its CSV export), its delimiter found from the
    header line unless given."""
    parquet = is_parquet(source)
    raw: IO[bytes] = csv_export(source) if parquet else open(source, "rb")  # noqa: SIM115
    counting = _Counting(raw)
    total = None if parquet else source.stat().st_size
    text = io.TextIOWrapper(
        io.BufferedReader(counting), encoding="utf-8-sig" if encoding == "utf-8" else encoding,
        newline="",
    )  # fmt: skip
    try:
        header_line = text.readline()
        sep = delimiter or _delimiter(header_line)
        header = next(csv.reader([header_line], delimiter=sep), [])
        reader = csv.reader(text, delimiter=sep)
        records = ((reader.line_num + 1, row) for row in reader)
        yield _Source(header, records, sep, counting, total)
    except UnicodeDecodeError:
        raise BlindFileError(
            f"the file does not decode as {encoding}: name its encoding (--encoding cp1252)",
            "not_utf8" if encoding == "utf-8" else "bad_encoding",
        ) from None
    finally:
        text.close()


def tokenise_blind(
    client: Client,
    source: Path,
    output: Path,
    *,
    columns: Sequence[str],
    keep: Sequence[str],
    keys: BlindKeys,
    rejects: Path | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    public_key: bytes | None = None,
    progress: Progress | None = None,
    purpose: str | None = None,
) -> BlindFileReport:
    """Tokenise ``source`` into ``output`` in blind mode (see the module's text)."""
    rejects = rejects or output.with_name(output.name + ".rejects.csv")
    with contextlib.ExitStack() as stack:
        read = stack.enter_context(_rows(source, delimiter, encoding))
        plan = _plan(read.header, columns, keep)
        target = stack.enter_context(written_as(output))
        out_file = stack.enter_context(_text(atomic_target(target)))
        rejects_file = stack.enter_context(_text(atomic_target(rejects)))
        # A Parquet output is first this CSV file, which _parquet reads with commas.
        sep = "," if is_parquet(output) else read.delimiter
        writer, rejected = csv.writer(out_file, delimiter=sep), csv.writer(rejects_file)
        writer.writerow(plan.header)
        rejected.writerow(["line", "column", "code"])
        counts = [0, 0, 0]
        for sent, found in _pipelined(
            client, plan, read.records, keys=keys, public_key=public_key, purpose=purpose
        ):
            for (line, _), (cells, problems) in zip(
                sent.block, _results(plan, sent, found), strict=True
            ):
                counts[0] += 1
                if problems:
                    counts[2] += 1
                    rejected.writerows([line, column, code] for column, code in problems)
                else:
                    counts[1] += 1
                    writer.writerow(cells)
            if progress is not None:
                progress(read.counting.done, read.total)
    return BlindFileReport(counts[0], counts[1], counts[2], str(output), str(rejects))


# Blocks blinded and sent ahead of the one being checked and unblinded: the partner's two halves
# of the work, and the service's, overlap (libsodium's calls release Python's lock).
AHEAD = 2


@dataclass(frozen=True, slots=True)
class _Sent:
    """A block of rows, its identifiers blinded and sent, and the service's answer."""

    block: list[tuple[int, list[str]]]
    slots: list[tuple[int, int]]  # (row in the block, column) of each value blinded
    batch: Blinded
    answer: BlindEvaluation | None  # None: no value of the block was sent


def _send(
    client: Client, plan: _Plan, block: list[tuple[int, list[str]]], keys: BlindKeys,
    purpose: str | None,
) -> _Sent:  # fmt: skip
    """Blind a block's identifiers and have them evaluated (in the sending thread)."""
    items, slots = [], []
    for row_number, (_, row) in enumerate(block):
        if len(row) == plan.width:
            for position, kind in plan.kinds.items():
                items.append((kind, row[position]))
                slots.append((row_number, position))
    batch = blind_batch(items, keys)
    return _Sent(block, slots, batch, client.blind_send(batch, keys, purpose=purpose))


def _pipelined(
    client: Client, plan: _Plan, records: Iterator[tuple[int, list[str]]], *, keys: BlindKeys,
    public_key: bytes | None, purpose: str | None,
) -> Iterator[tuple[_Sent, list[str | ValueRefused]]]:  # fmt: skip
    """Each block sent and its pseudonyms checked and unblinded, in the file's order, with
    :data:`AHEAD` blocks blinded and sent by one thread while this one checks."""
    per_block = max(1, BATCH // len(plan.kinds))
    blocks = iter(lambda: list(itertools.islice(records, per_block)), [])
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiers-blind")
    try:
        ahead = deque(
            pool.submit(_send, client, plan, block, keys, purpose)
            for block in itertools.islice(blocks, AHEAD)
        )
        while ahead:
            sent = ahead.popleft().result()
            if (block := next(blocks, None)) is not None:
                ahead.append(pool.submit(_send, client, plan, block, keys, purpose))
            found = client.blind_finish(
                sent.batch, sent.answer, keys, public_key=public_key, purpose=purpose
            )
            yield sent, found
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _results(
    plan: _Plan, sent: _Sent, found: list[str | ValueRefused]
) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Each row's output cells and its problems ``(column, code)``: written if it has none."""
    tokens: dict[tuple[int, int], str | ValueRefused] = dict(zip(sent.slots, found, strict=True))
    results: list[tuple[list[str], list[tuple[str, str]]]] = []
    for row_number, (_, row) in enumerate(sent.block):
        if len(row) != plan.width:
            results.append(([], [("", "field_count")]))
            continue
        problems = [
            (plan.header[plan.positions.index(p)], token.code)
            for p in plan.kinds
            if isinstance(token := tokens[row_number, p], ValueRefused)
        ]
        problems += [
            (plan.header[plan.positions.index(p)], "bad_character")
            for p in plan.positions
            if p not in plan.kinds and "\x00" in row[p]
        ]
        cells = [
            str(tokens[row_number, p]) if p in plan.kinds else _kept(row[p]) for p in plan.positions
        ]
        results.append((cells, problems))
    return results


@contextlib.contextmanager
def _text(binary: contextlib.AbstractContextManager[IO[bytes]]) -> Iterator[IO[str]]:
    """A text file (UTF-8, CRLF as csv writes it) over an atomic binary target."""
    with binary as handle:
        wrapper = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        yield wrapper
        wrapper.flush()
        wrapper.detach()
