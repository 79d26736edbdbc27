"""Streaming tokenisation of CSV customer files.

The file is read row by row (memory does not grow with its size). Identifier columns are replaced
by their pseudonyms under the same header; other columns pass only if listed in ``keep``. A row
with any problem is left out of the output and reported in the rejects file as
``line,column,code`` (never the value). Outputs are written to temporary files beside their
targets and renamed into place only when the whole file succeeded, so an interrupted run never
leaves a complete-looking output.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection

from audit import Action, Counts
from errors import InvalidFile, InvalidIdentifier, InvalidRequest, NotFound
from tiers import subject_index
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.csvio import (
    FIELD_SIZE_LIMIT,
    atomic_output,
    csv_records,
    open_raw,
    read_header,
    text_of,
    undecodable,
)
from tiers.deployment import Deployment
from tiers.fastpath import BLOCK_BYTES, RecordBlocks, in_order
from tiers.identifiers import IdentifierKind, get_kind
from tiers.storage import SortedInserts, bulk_load, sorted_inserts
from tiers.tokenisation import Registrar, Tokeniser, registrar_for

__all__ = [
    "ColumnSpec",
    "FileReport",
    "Reject",
    "neutralise_formula",
    "parse_column_spec",
    "tokenise_file",
]

ProgressCallback = Callable[[int, int], None]
# Lines of a block read column by column at a time: large enough for the batches to pay, small
# enough that a worker holds a few MB of rows and tokens, not a whole block's.
_COLUMN_SLICE = 2048
_PROGRESS_EVERY = 8192
_COLUMN_SPEC = re.compile(r"(?P<name>[^=]+)=(?P<kind>[a-z]+)")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What a token is written with: a domain name ([a-z][a-z0-9-]), ".v", its version, "." and base32.
_TOKEN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_NUMBER = re.compile(r"[+-]?[0-9]+([.,][0-9]+)?")


def neutralise_formula(cell: str) -> str:
    """A kept cell that a spreadsheet would run as a formula gets a leading ``'`` (OWASP CSV
    injection). Plain signed numbers such as ``-12.50`` are left as they are."""
    if cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """``--column NAME=KIND``: the column ``name`` holds identifiers of ``kind``."""

    name: str
    kind: str


def parse_column_spec(text: str) -> ColumnSpec:
    """Parse ``NAME=KIND``; raises :class:`InvalidRequest` or, for the kind, InvalidIdentifier."""
    match = _COLUMN_SPEC.fullmatch(text)
    if match is None:
        raise InvalidRequest("column expects NAME=KIND", code="bad_column_spec")
    get_kind(match["kind"])
    return ColumnSpec(match["name"], match["kind"])


@dataclass(frozen=True, slots=True)
class Reject:
    line: int
    column: str
    code: str


@dataclass(slots=True)
class FileReport:
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    registered: int = 0
    first_rejects: list[Reject] = field(default_factory=list)
    output: str = ""
    rejects: str = ""


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which input positions go out, and which of them are identifiers of which kind."""

    header: list[str]
    output_positions: list[int]
    identifier_positions: list[tuple[int, IdentifierKind]]
    keep_positions: list[int]
    # Input position of each identifier column -> its index among a row's tokens.
    identifier_slots: dict[int, int]


def _plan(header: list[str], columns: Sequence[ColumnSpec], keep: Sequence[str]) -> _Plan:
    if len(set(header)) != len(header):
        raise InvalidFile("the header names a column twice", code="duplicate_column")
    position = {name: i for i, name in enumerate(header)}
    identifier_names = [spec.name for spec in columns]
    if not columns:
        raise InvalidRequest(
            "name at least one identifier column (--column NAME=KIND)", code="no_columns"
        )
    if len(set(identifier_names)) != len(identifier_names):
        raise InvalidRequest("an identifier column is named twice", code="column_named_twice")
    overlap = set(identifier_names) & set(keep)
    if overlap:
        raise InvalidRequest(
            "a column is both an identifier (column) and kept as is (keep)",
            code="column_named_twice",
        )
    for option, names in (("column", identifier_names), ("keep", keep)):
        for n, name in enumerate(names, start=1):
            if name not in position:
                raise NotFound(
                    f"{option} number {n} names no column of the file's header",
                    code="unknown_column",
                )
    wanted = set(identifier_names) | set(keep)
    kinds = {spec.name: get_kind(spec.kind) for spec in columns}
    return _Plan(
        header=[name for name in header if name in wanted],
        output_positions=[i for i, name in enumerate(header) if name in wanted],
        identifier_positions=[(position[spec.name], kinds[spec.name]) for spec in columns],
        keep_positions=[position[name] for name in keep],
        identifier_slots={position[spec.name]: i for i, spec in enumerate(columns)},
    )


def _row_problems(
    row: list[str], plan: _Plan, width: int, tokeniser: Tokeniser
) -> tuple[list[tuple[str, str]], list[tuple[bytes, bytes, str]]]:
    """The ``(column, code)`` problems of one row, and its tokens when it has none."""
    if len(row) != width:
        return [("", "field_count")], []
    problems: list[tuple[str, str]] = []
    tokens: list[tuple[bytes, bytes, str]] = []
    for position, kind in plan.identifier_positions:
        value = row[position]
        if undecodable(value):
            problems.append((_column_name(plan, position), "bad_encoding"))
            continue
        try:
            tokens.append(tokeniser.tokenise(kind, value))
        except InvalidIdentifier as error:
            problems.append((_column_name(plan, position), error.code))
    for position in plan.keep_positions:
        value = row[position]
        if undecodable(value):
            problems.append((_column_name(plan, position), "bad_encoding"))
        elif "\x00" in value:
            problems.append((_column_name(plan, position), "bad_character"))
    return problems, tokens


def _column_name(plan: _Plan, position: int) -> str:
    return plan.header[plan.output_positions.index(position)]


def _check_options(source: Path | IO[bytes], output: Path, rejects: Path, delimiter: str) -> None:
    for path in (output, rejects):
        if isinstance(source, Path) and path.resolve() == source.resolve():
            raise InvalidRequest("an output file cannot be the input file", code="same_file")
    if output.resolve() == rejects.resolve():
        raise InvalidRequest("the output and rejects files must differ", code="same_file")
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise InvalidRequest(
            "the delimiter must be one character other than a quote or newline",
            code="bad_delimiter",
        )


@dataclass(slots=True)
class _Sink:
    """Where each processed record goes: the output, the rejects file, the registrar."""

    plan: _Plan
    output: Any
    rejects: Any
    registrar: Registrar | None
    report: FileReport
    max_listed_rejects: int
    output_handle: IO[str]
    # The subject index's references of every identifier accepted (tiers.subject_index): the
    # entry's number is known only at the end.
    touched: subject_index.Gathered

    def __post_init__(self) -> None:
        self.output.writerow(self.plan.header)
        self.rejects.writerow(["line", "column", "code"])

    def reject(self, line: int, problems: list[tuple[str, str]]) -> None:
        self.report.rows_rejected += 1
        for column, code in problems:
            self.rejects.writerow([line, column, code])
            if len(self.report.first_rejects) < self.max_listed_rejects:
                self.report.first_rejects.append(Reject(line, column, code))

    def accept(self, row: list[str], tokens: list[tuple[bytes, bytes, str]]) -> None:
        self.output.writerow(_output_row(self.plan, row, tokens))
        self.report.rows_out += 1
        self.touched.add([base for base, _, _ in tokens])
        if self.registrar is not None:
            for base, mac, kind in _registrations(self.plan, tokens):
                self.registrar.add(base, mac, kind)

    def apply(self, block: _BlockResult) -> None:
        """A block tokenised elsewhere (see :mod:`tiers.fastpath`), in file order."""
        if block.error is not None:
            raise InvalidFile(block.error[0], code=block.error[1])
        self.report.rows_in += block.rows_in
        for line, problems in block.rejects:
            self.reject(line, problems)
        self.output_handle.write(block.output)
        self.report.rows_out += block.rows_out
        if block.refs is not None:
            self.touched.blocks.append(block.refs)
        if self.registrar is not None:
            for base, mac, kind in block.registrations:
                self.registrar.add(base, mac, kind)


def _output_row(plan: _Plan, row: list[str], tokens: list[tuple[bytes, bytes, str]]) -> list[str]:
    slots = plan.identifier_slots
    return [
        neutralise_formula(row[pos]) if (slot := slots.get(pos)) is None else tokens[slot][2]
        for pos in plan.output_positions
    ]


def _registrations(
    plan: _Plan, tokens: list[tuple[bytes, bytes, str]]
) -> Iterator[tuple[bytes, bytes, str]]:
    for (base, mac, _), (_, kind) in zip(tokens, plan.identifier_positions, strict=True):
        yield base, mac, kind.name


@dataclass(slots=True)
class _BlockResult:
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
class _BlockWork:
    """Tokenise one block of whole lines: what a fast-path worker runs (holds the keys).

    A block that is valid UTF-8 and has no line longer than the field size limit is read
    column by column (:meth:`_by_column`); any other block row by row, by the code of the
    serial path (:meth:`_by_row`). Both give what the serial path gives, byte for byte.
    """

    plan: _Plan
    width: int
    tokeniser: Tokeniser
    delimiter: str
    register: bool
    index_secret: bytes  # the subject index's references are made here, in parallel

    def __call__(self, block: bytes, lines_before: int) -> _BlockResult:
        result = _BlockResult(bytes_in=len(block))
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:  # some row is rejected with bad_encoding
            return self._by_row(block, lines_before, result)
        # A fast block has no quote, no NUL, and no carriage return but before a newline
        # (tiers.fastpath): each line is one record, its fields split at the delimiter.
        lines = text.replace("\r\n", "\n").split("\n")
        lines.pop()  # after the block's last newline
        if len(text) > FIELD_SIZE_LIMIT and max(map(len, lines)) > FIELD_SIZE_LIMIT:
            return self._by_row(block, lines_before, result)  # the parser's error, as serially
        delimiter = self.delimiter
        outputs = []
        for start in range(0, len(lines), _COLUMN_SLICE):  # what is in memory at once
            records = [
                (lines_before + number, line.split(delimiter))
                for number, line in enumerate(lines[start : start + _COLUMN_SLICE], start + 1)
                if line  # a blank line is no record
            ]
            outputs.append(self._by_column(records, result))
        result.output = "".join(outputs)
        return self._sealed(result)

    def _by_row(self, block: bytes, lines_before: int, result: _BlockResult) -> _BlockResult:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, delimiter=self.delimiter)
        text = io.TextIOWrapper(
            io.BytesIO(block), encoding="utf-8", errors="surrogateescape", newline=""
        )
        reader = csv.reader(text, delimiter=self.delimiter, strict=False)
        try:
            for line, row in csv_records(reader, lines_before):
                result.rows_in += 1
                problems, tokens = _row_problems(row, self.plan, self.width, self.tokeniser)
                if problems:
                    result.rejects.append((line, problems))
                    continue
                writer.writerow(_output_row(self.plan, row, tokens))
                result.rows_out += 1
                result.bases += [base for base, _, _ in tokens]
                if self.register:
                    result.registrations.extend(_registrations(self.plan, tokens))
        except InvalidFile as error:
            result.error = (error.message, error.code)
        result.output = buffer.getvalue()
        return self._sealed(result)

    def _sealed(self, result: _BlockResult) -> _BlockResult:
        """``result`` with its identifiers made references of the subject index."""
        result.refs = subject_index.block_of(self.index_secret, result.bases)
        result.bases = []
        return result

    def _by_column(self, records: list[tuple[int, list[str]]], result: _BlockResult) -> str:
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
                    problem = (_column_name(plan, position), token.code)
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
        """The output lines of accepted records, built column by column (as :func:`_output_row`
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


@dataclass(slots=True)
class _Progress:
    """The caller's progress callback, given bytes read (or rows, reading a stream of unknown
    size)."""

    callback: ProgressCallback | None
    size: int
    done: int
    raw: IO[bytes] | None = None

    def block(self, block: _BlockResult, rows: int) -> None:
        self.done += block.bytes_in
        if self.callback is not None:
            self.callback(self.done if self.size else rows, self.size)

    def row(self, rows: int) -> None:
        if self.callback is not None and rows % _PROGRESS_EVERY == 0:
            assert self.raw is not None
            self.callback(self.raw.tell() if self.size else rows, self.size)


def _in_parallel(
    sink: _Sink, work: _BlockWork, blocks: RecordBlocks, *, workers: int, progress: _Progress
) -> None:
    """The fast part of a file: its blocks tokenised by ``workers`` processes, applied in file
    order (:mod:`tiers.fastpath`)."""
    for block in in_order(work, iter(blocks), workers):
        sink.apply(block)
        progress.block(block, sink.report.rows_in)


def _serially(
    sink: _Sink,
    records: Iterable[tuple[int, list[str]]],
    tokeniser: Tokeniser,
    *,
    width: int,
    progress: _Progress,
) -> None:
    """The rest of a file (all of it when it has no fast part), record by record; ``width`` is
    the header's."""
    plan, report = sink.plan, sink.report
    for line, row in records:
        report.rows_in += 1
        problems, tokens = _row_problems(row, plan, width, tokeniser)
        if problems:
            sink.reject(line, problems)
        else:
            sink.accept(row, tokens)
        progress.row(report.rows_in)


def _registrar(
    deployment: Deployment,
    connection: Connection,
    tokeniser: Tokeniser,
    now: datetime,
    held: SortedInserts | None,
) -> Registrar:
    """Who registers the file's subjects (and enrols its cards), in ``connection``."""
    # Known rows looked up rather than registered again: faster on SQLite, slower on
    # PostgreSQL, which registers through COPY (bench/HISTORY.md).
    return registrar_for(
        deployment, connection, tokeniser, now, held=held, skip_known=deployment.embedded
    )


def _registering(stack: ExitStack, connection: Connection) -> SortedInserts:
    """A registering load: a larger page cache, and the inserts held to be made in key order
    once the whole file is read."""
    stack.enter_context(bulk_load(connection))
    return stack.enter_context(sorted_inserts(connection))


def _record(
    deployment: Deployment,
    connection: Connection,
    access: Access,
    *,
    domain: str,
    report: FileReport,
    columns: int,
    kept: int,
    touched: subject_index.Gathered,
) -> None:
    """The file's entry, indexed under every customer it touched (:mod:`tiers.subject_index`),
    and its identifier cells charged to the client's budget."""
    identifiers = report.rows_in * columns
    entry = deployment.record(
        connection,
        access,
        action=Action.TOKENISE_FILE,
        domains=[domain],
        counts=Counts(report.rows_in, report.rows_out, report.rows_rejected),
        detail={
            "registered": report.registered,
            "columns": columns,
            "kept": kept,
            "identifiers": identifiers,
        },
    )
    touched.seal()
    subject_index.index_blocks(connection, entry, touched.blocks)
    deployment.budget.charge(access, identifiers)


def _header(
    blocks: RecordBlocks, block_bytes: int, delimiter: str
) -> tuple[bytes | None, Any, list[str]]:
    """The file's header, with its line when blocks follow it, or else with the reader of the
    whole file, read serially (``block_bytes`` 0, or a first line that is not safe)."""
    first_line = blocks.header() if block_bytes > 0 else None
    if first_line is None:
        reader = csv.reader(text_of(blocks.rest(), "utf-8-sig"), delimiter=delimiter, strict=False)
        return None, reader, read_header(reader)
    text = io.StringIO(first_line.decode("utf-8-sig", "surrogateescape"), newline="")
    return first_line, None, read_header(csv.reader(text, delimiter=delimiter, strict=False))


@audited(Action.TOKENISE_FILE)
def tokenise_file(
    deployment: Deployment,
    *,
    access: Access,
    source: Path | IO[bytes],
    output: Path,
    domain: str,
    columns: Sequence[ColumnSpec],
    keep: Sequence[str] = (),
    rejects: Path | None = None,
    register: bool = True,
    delimiter: str = ",",
    progress: ProgressCallback | None = None,
    max_listed_rejects: int = 10,
    workers: int | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> FileReport:
    """Tokenise the CSV ``source`` into ``output`` (see the module docstring).

    ``rejects`` defaults to ``<output>.rejects.csv`` and is always written (header only when no
    row was rejected). Raises, before writing anything: :class:`NotFound` (file, domain,
    column), :class:`InvalidRequest` (options), :class:`InvalidFile` (empty file, header only,
    not CSV, undecodable header, broken quoting). Subjects are registered in one transaction,
    committed only when the whole file was read, before the outputs are renamed into place.

    ``workers`` (default: ``TIERS_FILE_WORKERS``) processes tokenise blocks of
    ``block_bytes`` in parallel where the file allows it (see :mod:`tiers.fastpath`); the
    output is the same, byte for byte, whatever the workers and block size. ``block_bytes=0``
    reads the whole file serially (the simple path).
    """
    require(access, Action.TOKENISE_FILE, domain)
    deployment.budget.admit(access)
    rejects = rejects or output.with_name(output.name + ".rejects.csv")
    _check_options(source, output, rejects, delimiter)
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    report = FileReport(output=str(output), rejects=str(rejects))
    with ExitStack() as stack:
        raw, size = open_raw(source)
        stack.callback(raw.close)
        blocks = RecordBlocks(raw, block_bytes)
        first_line, reader, header = _header(blocks, block_bytes, delimiter)
        plan = _plan(header, columns, keep)
        # Entered last, so left first: the subjects are committed before the outputs appear.
        out_handle = stack.enter_context(atomic_output(output))
        rej_handle = stack.enter_context(atomic_output(rejects))
        connection = stack.enter_context(deployment.transaction())
        held = _registering(stack, connection) if register else None
        tokeniser = Tokeniser.open(deployment, connection, domain)
        registrar = _registrar(deployment, connection, tokeniser, access.now, held)
        sink = _Sink(
            plan,
            csv.writer(out_handle, delimiter=delimiter),
            csv.writer(rej_handle),
            registrar if register else None,
            report,
            max_listed_rejects,
            out_handle,
            subject_index.Gathered(
                subject_index.index_secret(deployment.audit_keyring(connection).active)
            ),
        )
        lines_before = 0
        if first_line is not None:
            work = _BlockWork(
                plan, len(header), tokeniser, delimiter, register, sink.touched.secret
            )
            workers = workers or deployment.settings.file_workers
            watch = _Progress(progress, size, len(first_line))
            _in_parallel(sink, work, blocks, workers=workers, progress=watch)
            reader = csv.reader(text_of(blocks.rest(), "utf-8"), delimiter=delimiter, strict=False)
            lines_before = blocks.lines
        watch = _Progress(progress, size, 0, raw)
        records = csv_records(reader, lines_before)
        _serially(sink, records, tokeniser, width=len(header), progress=watch)
        if report.rows_in == 0:
            raise InvalidFile("the file has a header but no data rows", code="no_rows")
        registrar.finish()
        report.registered = registrar.registered
        _record(
            deployment,
            connection,
            access,
            domain=domain,
            report=report,
            columns=len(columns),
            kept=len(keep),
            touched=sink.touched,
        )
        if progress is not None:
            progress(size, size)
    return report
