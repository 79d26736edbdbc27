"""Streaming tokenisation of CSV customer files.

The file is read as a stream (memory does not grow with its size): blocks of simple lines by worker
processes where the file allows it (:mod:`tiers._fastpath`), the rest record by record, with the
same result byte for byte (:mod:`tiers._file_rows` is what both do to a row). The file is
taken as it comes (:func:`tiers._csvio.prepared`): its delimiter found from the header unless
named, UTF-8 with or without a byte-order mark, or cp1252 and latin-1 when named.

Identifier columns are replaced by their pseudonyms under the same header; other columns pass only
if listed in ``keep``. A row with any problem is left out of the output and reported in the rejects
file as ``line,column,code`` (never the value). Outputs are written to temporary files beside their
targets and renamed into place only when the whole file succeeded, so an interrupted run never
leaves a complete-looking output.

Before anything is written, a bad call raises :class:`NotFound` (file, domain, column),
:class:`InvalidRequest` (options) or :class:`InvalidFile` (empty file, header only, not CSV,
undecodable header, broken quoting). Subjects are registered in one transaction, committed only when
the whole file was read, before the outputs are renamed into place. ``block_bytes=0`` reads the
whole file serially (the simple path).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection

from audit import Action, Counts
from errors import InvalidFile, InvalidRequest
from tiers import _parquet as formats
from tiers import _subject_index as subject_index
from tiers._csvio import (
    FIELD_SIZE_LIMIT,
    atomic_binary_output,
    atomic_output,
    checked_delimiter,
    csv_records,
    open_raw,
    prepared,
    read_header,
    text_of,
)
from tiers._fastpath import BLOCK_BYTES, BlockResult, BlockWork, RecordBlocks, in_order
from tiers._file_entry import file_registrar, recorded
from tiers._file_rows import (
    ColumnSpec,
    Plan,
    Token,
    output_row,
    plan_of,
    registrations,
    row_problems,
)
from tiers._parquet import ParquetRows
from tiers._parquet import records as parquet_records
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.identifiers import get_kind
from tiers.spark import SparkFile, spark_master
from tiers.tokenisation import Registrar, Tokeniser

__all__ = [
    "ColumnSpec",
    "FileReport",
    "Reject",
    "parse_column_spec",
    "tokenise_file",
]

ProgressCallback = Callable[[int, int], None]
_PROGRESS_EVERY = 8192
_COLUMN_SPEC = re.compile(r"(?P<name>[^=]+)=(?P<kind>[a-z]+)")


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


def _checked_options(
    source: Path | IO[bytes] | str,
    output: Path,
    rejects: Path,
    options: tuple[str | None, str | None],
) -> tuple[str | None, bool]:
    """Refuse options that cannot work; returns the delimiter (named or None) and whether the
    file is Parquet (``options``: the delimiter and the format given)."""
    delimiter, file_format = options
    for path in (output, rejects):
        if isinstance(source, Path) and path.resolve() == source.resolve():
            raise InvalidRequest("an output file cannot be the input file", code="same_file")
    if output.resolve() == rejects.resolve():
        raise InvalidRequest("the output and rejects files must differ", code="same_file")
    named = Path(source) if isinstance(source, str | Path) else None
    return checked_delimiter(delimiter), formats.file_format(named, file_format) == "parquet"


@dataclass(slots=True)
class _Sink:
    """Where each processed record goes, in the file's transaction: the output, the rejects
    file, the registrar and the subject index's references."""

    plan: Plan
    width: int  # of the file's header
    delimiter: str
    report: FileReport
    connection: Connection
    tokeniser: Tokeniser
    registrar: Registrar
    register: bool
    output_handle: IO[str] | None  # a CSV output's, for the fast path's blocks
    max_listed_rejects: int
    # The subject index's references of every identifier accepted (tiers._subject_index): the
    # entry's number is known only at the end.
    touched: subject_index.Gathered
    output: Any = None
    rejects: Any = None

    @classmethod
    def opened(
        cls,
        stack: ExitStack,
        deployment: Deployment,
        access: Access,
        domain: str,
        *,
        plan: Plan,
        width: int,
        report: FileReport,
        delimiter: str,
        register: bool,
        max_listed_rejects: int,
        parquet: bool = False,
    ) -> _Sink:
        """The outputs, beside their targets, and the transaction, entered on ``stack`` last,
        so left first: the subjects are committed before the outputs are renamed into place.
        A Parquet output is written by :class:`tiers._parquet.ParquetRows`, closed (its footer
        written) before it is renamed."""
        output, out_handle = _output(stack, Path(report.output), plan.header, delimiter, parquet)
        rej_handle = stack.enter_context(atomic_output(Path(report.rejects)))
        connection = stack.enter_context(deployment.transaction())
        tokeniser = Tokeniser.open(deployment, connection, domain)
        secret = subject_index.index_secret(deployment.audit_keyring(connection).active)
        sink = cls(
            connection=connection,
            tokeniser=tokeniser,
            registrar=file_registrar(
                stack, deployment, connection, tokeniser, access.now, register=register
            ),
            output_handle=out_handle,
            touched=subject_index.Gathered(secret),
            plan=plan,
            width=width,
            delimiter=delimiter,
            report=report,
            register=register,
            max_listed_rejects=max_listed_rejects,
        )
        sink.output = output
        sink.rejects = csv.writer(rej_handle)
        sink.rejects.writerow(["line", "column", "code"])
        return sink

    def reject(self, line: int, problems: list[tuple[str, str]]) -> None:
        self.report.rows_rejected += 1
        for column, code in problems:
            self.rejects.writerow([line, column, code])
            if len(self.report.first_rejects) < self.max_listed_rejects:
                self.report.first_rejects.append(Reject(line, column, code))

    def accept(self, row: list[str], tokens: list[Token]) -> None:
        self.output.writerow(output_row(self.plan, row, tokens))
        self.report.rows_out += 1
        self.touched.add([base for base, _, _ in tokens])
        if self.register:
            for base, mac, kind in registrations(self.plan, tokens):
                self.registrar.add(base, mac, kind)

    def apply(self, block: BlockResult) -> None:
        """A block tokenised elsewhere (see :mod:`tiers._fastpath`), in file order."""
        if block.error is not None:
            raise InvalidFile(block.error[0], code=block.error[1])
        self.report.rows_in += block.rows_in
        for line, problems in block.rejects:
            self.reject(line, problems)
        if self.output_handle is not None:
            self.output_handle.write(block.output)
        else:  # a Parquet output, of blocks tokenised on Spark: their records, as rows
            text = io.StringIO(block.output, newline="")
            for row in csv.reader(text, delimiter=self.delimiter):
                self.output.writerow(row)
        self.report.rows_out += block.rows_out
        if block.refs is not None:
            self.touched.blocks.append(block.refs)
        if self.register:
            for base, mac, kind in block.registrations:
                self.registrar.add(base, mac, kind)


def _output(
    stack: ExitStack, path: Path, header: list[str], delimiter: str, parquet: bool
) -> tuple[Any, IO[str] | None]:
    """The output's writer (rows of text), and its text handle when it is CSV."""
    if parquet:
        writer = ParquetRows(stack.enter_context(atomic_binary_output(path)), header)
        stack.callback(writer.close)
        return writer, None
    handle = stack.enter_context(atomic_output(path))
    output = csv.writer(handle, delimiter=delimiter)
    output.writerow(header)
    return output, handle


@dataclass(slots=True)
class _Progress:
    """The caller's progress callback, given bytes read (or rows, reading a stream of unknown
    size)."""

    callback: ProgressCallback | None
    size: int
    done: int
    raw: IO[bytes] | None = None

    def block(self, block: BlockResult, rows: int) -> None:
        # A transcoded file's blocks are longer than the bytes read: never past the size.
        self.done = min(self.done + block.bytes_in, self.size) if self.size else 0
        if self.callback is not None:
            self.callback(self.done if self.size else rows, self.size)

    def row(self, rows: int) -> None:
        if self.callback is not None and rows % _PROGRESS_EVERY == 0:
            # bytes read when the size is known; rows for a stream or a Parquet file
            done = self.raw.tell() if self.size and self.raw is not None else rows
            self.callback(done, self.size)


def _in_parallel(
    sink: _Sink, src: _Source, *, workers: int, progress: _Progress
) -> Iterator[tuple[int, list[str]]]:
    """The fast part of a CSV file: its blocks tokenised by ``workers`` processes, applied in
    file order (:mod:`tiers._fastpath`). Returns the records of the rest."""
    blocks = src.blocks
    assert blocks is not None
    work = BlockWork(
        sink.plan, sink.width, sink.tokeniser, sink.delimiter, sink.register, sink.touched.secret
    )
    for block in in_order(work, iter(blocks), workers):
        sink.apply(block)
        progress.block(block, sink.report.rows_in)
    reader = csv.reader(text_of(blocks.rest(), "utf-8"), delimiter=sink.delimiter, strict=False)
    return csv_records(reader, blocks.lines)


def _serially(sink: _Sink, records: Iterable[tuple[int, list[str]]], progress: _Progress) -> None:
    """The rest of a file (all of it when it has no fast part), record by record."""
    plan, report = sink.plan, sink.report
    for line, row in records:
        report.rows_in += 1
        problems, tokens = row_problems(row, plan, sink.width, sink.tokeniser)
        if problems:
            sink.reject(line, problems)
        else:
            sink.accept(row, tokens)
        progress.row(report.rows_in)


def _finish(
    deployment: Deployment, access: Access, sink: _Sink, *, domain: str, kept: int, engine: str
) -> None:
    """The file's subjects registered and its entry written (:func:`tiers._file_entry.recorded`)."""
    report = sink.report
    report.registered = recorded(
        deployment, access, sink.connection, sink.registrar, sink.touched, domain=domain,
        counts=Counts(report.rows_in, report.rows_out, report.rows_rejected),
        columns=len(sink.plan.identifier_positions), kept=kept, engine=engine,
    )  # fmt: skip


@dataclass(slots=True)
class _Source:
    """A file opened for reading: its header, its size (0: unknown) and its records; a CSV
    file's blocks too, when its first line lets the fast path read them."""

    header: list[str]
    size: int
    raw: IO[bytes] | None  # whose position tells the progress
    delimiter: str
    parquet: bool
    records: Iterator[tuple[int, list[str]]] | None = None
    blocks: RecordBlocks | None = None
    first_line: bytes | None = None
    spark: SparkFile | None = None  # a file read by Spark's executors

    @classmethod
    def opened(
        cls, stack: ExitStack, source: Path | IO[bytes] | str, *, parquet: bool, encoding: str,
        delimiter: str | None, block_bytes: int, master: str | None = None,
    ) -> _Source:  # fmt: skip
        if master is not None:
            if not isinstance(source, (Path, str)):
                raise InvalidRequest("Spark reads a file from a path", code="unknown_engine")
            read = SparkFile.surveyed(
                master, source, parquet=parquet, encoding=encoding, delimiter=delimiter
            )
            return cls(read.header, read.size, None, read.delimiter, parquet, spark=read)
        if isinstance(source, str):
            source = Path(source)
        if parquet:
            if not isinstance(source, Path):
                raise InvalidRequest("a Parquet file is read from a file", code="unknown_format")
            header, rows = parquet_records(source)
            return cls(header, 0, None, ",", True, records=rows)
        raw, size = open_raw(source)
        stack.callback(raw.close)
        readable, found = prepared(raw, encoding=encoding, delimiter=delimiter)
        blocks = RecordBlocks(readable, block_bytes)
        first_line = blocks.header() if block_bytes > 0 else None
        if first_line is None:
            reader = csv.reader(text_of(blocks.rest(), "utf-8-sig"), delimiter=found, strict=False)
            return cls(read_header(reader), size, raw, found, False, records=csv_records(reader))
        text = io.StringIO(first_line.decode("utf-8-sig", "surrogateescape"), newline="")
        header = read_header(csv.reader(text, delimiter=found, strict=False))
        return cls(header, size, raw, found, False, blocks=blocks, first_line=first_line)


@audited(Action.TOKENISE_FILE)
def tokenise_file(
    deployment: Deployment,
    *,
    access: Access,
    source: Path | IO[bytes] | str,
    output: Path,
    domain: str,
    columns: Sequence[ColumnSpec],
    keep: Sequence[str] = (),
    rejects: Path | None = None,
    register: bool = True,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    file_format: str | None = None,
    progress: ProgressCallback | None = None,
    max_listed_rejects: int = 10,
    workers: int | None = None,
    block_bytes: int = BLOCK_BYTES,
    report: FileReport | None = None,
    engine: str | None = None,
) -> FileReport:
    """Tokenise ``source`` (CSV, or Parquet by ``file_format`` or its extension) into ``output``
    and ``rejects`` (by default ``<output>.rejects.csv``), as the module docstring says;
    ``workers`` (by default ``TIERS_FILE_WORKERS``) tokenise a CSV file's blocks. A ``report``
    given is filled as the file is read, so that another caller can read its counts meanwhile.
    ``engine`` ``spark[:MASTER_URL]`` reads and tokenises the rows on Spark (:mod:`tiers.spark`);
    the source is then any path Spark reads.
    """
    require(access, Action.TOKENISE_FILE, domain)
    master = spark_master(engine)
    deployment.budget.admit(access)
    rejects = rejects or output.with_name(output.name + ".rejects.csv")
    delimiter, parquet = _checked_options(source, output, rejects, (delimiter, file_format))
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    report = report or FileReport()
    report.output, report.rejects = str(output), str(rejects)
    with ExitStack() as stack:
        src = _Source.opened(
            stack, source, parquet=parquet, encoding=encoding, delimiter=delimiter,
            block_bytes=block_bytes, master=master,
        )  # fmt: skip
        plan = plan_of(src.header, columns, keep)  # the columns checked before any job runs
        run = None
        if src.spark is not None:  # run by the executors before the file's transaction begins
            run = stack.enter_context(
                src.spark.run(deployment, domain, columns, keep, register=register)
            )
        sink = _Sink.opened(
            stack, deployment, access, domain, plan=plan,
            width=len(src.header), report=report, delimiter=src.delimiter, register=register,
            max_listed_rejects=max_listed_rejects, parquet=parquet,
        )  # fmt: skip
        records = src.records
        if run is not None:
            watch = _Progress(progress, src.size, 0)
            for block in run.blocks(deployment, sink.connection, sink.tokeniser):
                sink.apply(block)
                watch.block(block, sink.report.rows_in)
            run.register(sink.connection, sink.registrar)
            records = iter(())
        elif records is None:  # the fast part first (CSV)
            watch = _Progress(progress, src.size, len(src.first_line or b""))
            workers = workers or deployment.settings.file_workers
            records = _in_parallel(sink, src, workers=workers, progress=watch)
        _serially(sink, records, _Progress(progress, src.size, 0, src.raw))
        engine_name = "local" if master is None else "spark"
        _finish(deployment, access, sink, domain=domain, kept=len(keep), engine=engine_name)
        if progress is not None:
            progress(src.size, src.size)
    return report
