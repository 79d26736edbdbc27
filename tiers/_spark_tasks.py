"""What the executors of a Spark job do; :mod:`tiers.spark` is the driver's half.

Every function here runs in a Spark executor's Python worker, on Arrow record batches
(``mapInArrow``). A task is sent a :class:`Job` (the names of the domain and the columns, the
file's options, the number of lines before each split of the file) and nothing else: the executor
opens the deployment itself, from its own environment (``TIERS_HOME``, ``TIERS_DATABASE_URL``,
the master key or its token), and unwraps the keys in its own memory. No key is broadcast,
pickled into a task, written to Spark's shuffle or spill files, or logged.

A CSV file is read by Spark as its lines cut at ``\\n`` (raw bytes, a ``\\r`` kept), each with the
start of its split, so that each line's number is known from the lines of the splits before
(:func:`survey` counts them). Up to the first line that needs a real CSV parser (a quote, a NUL, a
lone carriage return), each line is a record: blocks of lines are tokenised in the task that read
them, by the command line's own code (:class:`tiers._fastpath.BlockWork`). From that line on, the
file is read whole by one task and parsed by Python's ``csv`` module, as the command line does
(:func:`tail`). A Parquet file's rows are worked on where they are read (:func:`parquet_rows`).

A clear value never leaves the task that read it: a task hands back pseudonyms, kept cells,
rejects as line, column and code, and the references of the subject index (:func:`encoded`).
What it registers (base pseudonyms and their index's MACs) it writes itself, in bulk, into the
job's staged subjects (:mod:`tiers.storage.staged`), in transactions of its own: the driver
registers them in the transaction of the job's access-log entry, or drops them if the job fails.
"""

from __future__ import annotations

import codecs
import csv
import io
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pyarrow as pa
from pydantic import ValidationError
from sqlalchemy import Connection

from errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidFile,
    KeyUnavailable,
    StateConflict,
    TiersError,
)
from tiers import _subject_index as subject_index
from tiers._csvio import CHECKED_BYTES, FIELD_SIZE_LIMIT, csv_records, read_header
from tiers._fastpath import BLOCK_BYTES, BlockResult, BlockWork, collector_paused
from tiers._file_rows import ColumnSpec, plan_of
from tiers._parquet import text_rows
from tiers.deployment import Deployment
from tiers.settings import Settings
from tiers.storage import audit_log, staged
from tiers.tokenisation import Tokeniser

__all__ = [
    "FRAME_SCHEMA",
    "RESULT_SCHEMA",
    "SURVEY_SCHEMA",
    "TAIL_START",
    "Job",
    "decoded",
    "frame_block",
    "frame_rows",
    "identity",
    "key_versions",
    "parquet_rows",
    "same_keys",
    "survey",
    "tail",
    "tokenised_lines",
]

# What each task hands back: one row a block of records (its rejects as lists).
RESULT_SCHEMA = (
    "start long, seq long, bytes_in long, rows_in long, rows_out long, output string, "
    "reject_line array<long>, reject_column array<string>, reject_code array<string>, "
    "refs binary, ref_starts array<long>, error_message string, error_code string, "
    "failed_message string, failed_code string"
)
# What the survey hands back: one row a split of the file.
SURVEY_SCHEMA = "file string, start long, lines long, bytes long, unsafe long, head binary"
# The tail's results come after every split's (their ``start``).
TAIL_START = 1 << 62
# Records of the tail worked on in one block.
TAIL_RECORDS = 8192


@dataclass(frozen=True, slots=True)
class Job:
    """What every task of a file is sent: names and options, never a key or a value."""

    domain: str
    header: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    keep: tuple[str, ...]
    delimiter: str
    encoding: str
    register: bool
    # (start of a split, physical lines of the file before it), for every split
    splits: tuple[tuple[int, int], ...] = ()
    # the first line read by the tail task (0: none, every line is a record)
    unsafe: int = 0
    # the driver's deployment (:func:`identity`): an executor that opened another refuses
    deployment: str = ""
    # the active versions of the keys the driver registers and indexes under
    # (:func:`key_versions`): an executor that finds others (a rotation during the job) refuses
    versions: tuple[int, int, int] = (0, 0, 0)
    # the name the registrations of the job are staged under (tiers.storage.staged)
    staging: str = ""


# The deployment this worker opened, by its settings (a worker serves many tasks).
_OPENED: dict[tuple[str, str], Deployment] = {}


def _deployment() -> Deployment:
    try:
        settings = Settings()
    except ValidationError as exc:  # named, never their values
        names = ", ".join(f"TIERS_{str(e['loc'][0]).upper()}" for e in exc.errors() if e["loc"])
        raise ConfigurationError(f"invalid settings: {names}", code="configuration") from None
    key = (str(settings.home), settings.database_url or "")
    opened = _OPENED.get(key)
    if opened is None:
        opened = Deployment.open(settings, reader=True)
        _OPENED[key] = opened
    return opened


@dataclass(frozen=True, slots=True)
class _Work:
    """A task's tokeniser (:class:`~tiers._fastpath.BlockWork`), whose registrations it
    stages for the job's driver rather than hands back."""

    work: BlockWork
    deployment: Deployment
    staging: str

    def __call__(self, block: bytes, lines_before: int) -> BlockResult:
        return self._staged(self.work(block, lines_before))

    def of_records(
        self, records: Iterator[tuple[int, list[str]]], result: BlockResult
    ) -> BlockResult:
        return self._staged(self.work.of_records(records, result))

    def _staged(self, result: BlockResult) -> BlockResult:
        """``result``, its registrations staged in a transaction of this executor's own (a block
        in error registers nothing: the job fails)."""
        if result.registrations and result.error is None:
            tokeniser = self.work.tokeniser
            with self.deployment.transaction(checkpoint=False) as connection:
                staged.stage(
                    connection, job=self.staging, domain_id=tokeniser.domain.id,
                    version=tokeniser.domain_key.version, rows=result.registrations,
                    now=datetime.now(UTC),
                )  # fmt: skip
        result.registrations = []
        return result


def _work(job: Job) -> _Work:
    """The tokeniser of ``job``'s domain, from the deployment this executor opens itself."""
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    deployment = _deployment()
    with deployment.reading() as connection:
        if identity(deployment, connection) != job.deployment:
            raise KeyUnavailable(
                "the executor's deployment is not the driver's (another master key or database)",
                code="wrong_deployment",
            )
        tokeniser = Tokeniser.open(deployment, connection, job.domain)
        same_keys(deployment, connection, tokeniser, job)
        secret = subject_index.index_secret(deployment.audit_keyring(connection).active)
    plan = plan_of(list(job.header), job.columns, job.keep)
    work = BlockWork(plan, len(job.header), tokeniser, job.delimiter, job.register, secret)
    return _Work(work, deployment, job.staging)


def identity(deployment: Deployment, connection: Connection) -> str:
    """What tells one deployment from another, public: its master key's check value and its
    log's origin."""
    return f"{deployment.master.check_value()} {audit_log.log_origin(connection)}"


def key_versions(
    deployment: Deployment, connection: Connection, tokeniser: Tokeniser
) -> tuple[int, int, int]:
    """The active versions of the base key, the domain's key and the audit key (which makes
    the subject index's references)."""
    audit = deployment.audit_keyring(connection).active.version
    return tokeniser.base_key.version, tokeniser.domain_key.version, audit


def same_keys(
    deployment: Deployment, connection: Connection, tokeniser: Tokeniser, job: Job
) -> None:
    """Refuse (``keys_changed``) when the active keys are not those ``job`` was made with."""
    if key_versions(deployment, connection, tokeniser) != job.versions:
        raise StateConflict(
            "the keys changed during the job (a rotation): run it again", code="keys_changed"
        )


def _failure(error: BaseException) -> tuple[str, str]:
    """The message and code of a task that could not open the deployment, never an
    unexpected error's text (which could hold anything)."""
    if isinstance(error, TiersError):
        return error.message, error.code
    return f"unexpected {type(error).__name__}", "executor_unavailable"


def _opened(job: Job) -> tuple[_Work | None, pa.RecordBatch]:
    """The task's tokeniser, or the one row that tells the driver why there is none."""
    try:
        return _work(job), None
    except Exception as error:  # noqa: BLE001 - handed to the driver as a code, never raised
        return None, _failed(error)


def _failed(error: BaseException) -> pa.RecordBatch:
    """The row of :data:`RESULT_SCHEMA` that tells the driver why a task stopped."""
    return _batch([(0, 0, BlockResult())], failed=_failure(error))


def encoded(results: Sequence[tuple[int, int, BlockResult]]) -> pa.RecordBatch:
    """Blocks' results as rows of :data:`RESULT_SCHEMA`."""
    return _batch(results)


def _batch(
    results: Sequence[tuple[int, int, BlockResult]], failed: tuple[str, str] | None = None
) -> pa.RecordBatch:
    columns: dict[str, list[object]] = {name: [] for name in _FIELDS}
    for start, seq, result in results:
        problems = [(line, *problem) for line, found in result.rejects for problem in found]
        refs = result.refs
        values = (
            start, seq, result.bytes_in, result.rows_in, result.rows_out, result.output,
            [p[0] for p in problems], [p[1] for p in problems], [p[2] for p in problems],
            None if refs is None else refs.refs, None if refs is None else list(refs.starts),
            *(result.error or (None, None)), *(failed or (None, None)),
        )  # fmt: skip
        for name, value in zip(_FIELDS, values, strict=True):
            columns[name].append(value)
    return pa.RecordBatch.from_pydict(columns, schema=_ARROW_SCHEMA)


_ARROW_SCHEMA = pa.schema(
    [
        ("start", pa.int64()), ("seq", pa.int64()), ("bytes_in", pa.int64()),
        ("rows_in", pa.int64()), ("rows_out", pa.int64()), ("output", pa.string()),
        ("reject_line", pa.list_(pa.int64())), ("reject_column", pa.list_(pa.string())),
        ("reject_code", pa.list_(pa.string())),
        ("refs", pa.binary()), ("ref_starts", pa.list_(pa.int64())),
        ("error_message", pa.string()), ("error_code", pa.string()),
        ("failed_message", pa.string()), ("failed_code", pa.string()),
    ]
)  # fmt: skip
_FIELDS = tuple(_ARROW_SCHEMA.names)


def decoded(row: Mapping[str, Any]) -> BlockResult:
    """A row of :data:`RESULT_SCHEMA` back into the block's result (on the driver)."""
    result = BlockResult(
        bytes_in=row["bytes_in"], rows_in=row["rows_in"], rows_out=row["rows_out"],
        output=row["output"],
    )  # fmt: skip
    problems = zip(row["reject_line"], row["reject_column"], row["reject_code"], strict=True)
    for line, column, code in problems:
        if result.rejects and result.rejects[-1][0] == line:
            result.rejects[-1][1].append((column, code))
        else:
            result.rejects.append((line, [(column, code)]))
    _referenced(row, result)
    if row["error_code"] is not None:
        result.error = (row["error_message"], row["error_code"])
    return result


def _referenced(row: Mapping[str, Any], result: BlockResult) -> None:
    """A result row's subject index references, back into ``result`` (the same columns in
    :data:`RESULT_SCHEMA` and :data:`FRAME_SCHEMA`)."""
    if row["refs"] is not None:
        result.refs = subject_index.Block(bytes(row["refs"]), array("I", row["ref_starts"]))


def survey(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each split's count of lines and bytes, and the index in it of its first line that needs
    a real CSV parser (-1: none); the splits that start in the file's first
    :data:`~tiers._csvio.CHECKED_BYTES` hand back their lines in it too (the header, and what
    the encoding is checked on)."""
    found: dict[tuple[str, int], list[int]] = {}
    heads: dict[tuple[str, int], list[bytes]] = {}
    for batch in batches:
        names, values, starts = (batch.column(i).to_pylist() for i in range(3))
        for name, value, start in zip(names, values, starts, strict=True):
            counts = found.setdefault((name, start), [0, 0, -1])
            if counts[2] == -1 and _unsafe(value):
                counts[2] = counts[0]
            counts[0] += 1
            counts[1] += len(value) + 1
            if start < CHECKED_BYTES and counts[1] - len(value) - 1 < CHECKED_BYTES:
                heads.setdefault((name, start), []).append(value + b"\n")
    for (name, start), (lines, size, unsafe) in found.items():
        head = heads.get((name, start))
        head_bytes = None if head is None else b"".join(head)[:CHECKED_BYTES]
        yield pa.RecordBatch.from_pydict(
            {"file": [name], "start": [start], "lines": [lines], "bytes": [size],
             "unsafe": [unsafe], "head": [head_bytes]},
            schema=_SURVEY,
        )  # fmt: skip


_SURVEY = pa.schema(
    [("file", pa.string()), ("start", pa.int64()), ("lines", pa.int64()), ("bytes", pa.int64()),
     ("unsafe", pa.int64()), ("head", pa.binary())]
)  # fmt: skip


def _unsafe(line: bytes) -> bool:
    """Whether a line (cut at ``\\n``) needs a real parser: a quote, a NUL, or a carriage
    return that does not end it (a last line without ``\\n`` may end with one)."""
    return b'"' in line or b"\x00" in line or b"\r" in line[:-1]


def _transcoder(job: Job) -> Callable[[bytes], bytes]:
    """Bytes of ``job``'s encoding as UTF-8 (an undefined byte kept as it was, not valid
    UTF-8, as :func:`tiers._csvio.prepared` keeps it)."""
    if job.encoding == "utf-8":
        return lambda data: data
    encoding = job.encoding
    return lambda data: data.decode(encoding, "surrogateescape").encode("utf-8", "surrogateescape")


Task = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def _task(
    job: Job, run: Callable[[_Work, Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
) -> Task:
    """The function ``mapInArrow`` runs: ``run`` with the task's tokeniser, or the one row
    that tells the driver why the executor has none, or why it could not stage (the database
    lost)."""

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        work, failure = _opened(job)
        if work is None:
            yield failure
            return
        try:
            yield from run(work, batches)
        except DatabaseUnavailable as error:
            yield _failed(error)

    return task


def tokenised_lines(job: Job) -> Task:
    """The task of the lines before ``job.unsafe``: blocks of whole lines, tokenised."""
    before = dict(job.splits)

    def run(work: _Work, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        seen: dict[int, int] = {}
        for start, seq, first, block in _blocks(_numbered_lines(batches, before, job, seen)):
            with collector_paused():  # as in a worker of the fork pool (tiers._fastpath)
                result = work(block, first - 1)
            yield encoded([(start, seq, result)])
        yield _ends(seen)

    return _task(job, run)


def _ends(seen: dict[int, int]) -> pa.RecordBatch:
    """The marker that each split of ``seen`` is done (``seq`` -1), in the order read."""
    return encoded([(start, -1, BlockResult()) for start in seen])


def _numbered_lines(
    batches: Iterator[pa.RecordBatch], before: dict[int, int], job: Job, index: dict[int, int]
) -> Iterator[tuple[int, int, bytes]]:
    """``(split start, line number, line)`` of the records this task reads (the header and
    the tail's lines left out); ``index`` counts the lines read of each split."""
    transcode = _transcoder(job)
    for batch in batches:
        values, starts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        for value, start in zip(values, starts, strict=True):
            number = before[start] + index.get(start, 0) + 1
            index[start] = index.get(start, 0) + 1
            if number > 1 and (not job.unsafe or number < job.unsafe):
                yield start, number, transcode(value)


def _blocks(lines: Iterator[tuple[int, int, bytes]]) -> Iterator[tuple[int, int, int, bytes]]:
    """``(split start, seq, first line number, block)``: consecutive lines of one split, joined
    back into blocks of about :data:`~tiers._fastpath.BLOCK_BYTES`."""
    pending: list[bytes] = []
    size = seq = first = last = split = 0
    for start, number, line in lines:
        if pending and (start != split or number != last + 1 or size >= BLOCK_BYTES):
            yield split, seq, first, b"\n".join(pending) + b"\n"
            pending, size, seq = [], 0, seq + 1
        if not pending:
            split, first = start, number
        pending.append(line)
        size += len(line) + 1
        last = number
    if pending:
        yield split, seq, first, b"\n".join(pending) + b"\n"


def tail(job: Job) -> Task:
    """The task of the file's lines from ``job.unsafe`` on: the file read whole (one row),
    its records from that line parsed by Python's ``csv`` module, as the command line reads
    them, and tokenised by blocks of :data:`TAIL_RECORDS`."""

    def run(work: _Work, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for data in batch.column(0).to_pylist():
                yield from _tail_blocks(work, job, data)
        yield _ends({TAIL_START: 0})

    return _task(job, run)


def _tail_blocks(work: _Work, job: Job, data: bytes) -> Iterator[pa.RecordBatch]:
    data = _transcoder(job)(data.removeprefix(codecs.BOM_UTF8) if job.encoding == "utf-8" else data)
    position = 0
    for _ in range(job.unsafe - 1):
        position = data.index(b"\n", position) + 1
    text = io.TextIOWrapper(
        io.BytesIO(data[position:]), encoding="utf-8", errors="surrogateescape", newline=""
    )
    reader = csv.reader(text, delimiter=job.delimiter, strict=False)
    if job.unsafe == 1 and tuple(read_header(reader)) != job.header:
        error = InvalidFile("the header record spans several lines", code="header_lines")
        yield encoded([(TAIL_START, 0, BlockResult(error=(error.message, error.code)))])
        return
    records = csv_records(reader, job.unsafe - 1)
    seq = 0
    while True:
        result = work.of_records(islice(records, TAIL_RECORDS), BlockResult())
        done = result.error is not None or result.rows_in < TAIL_RECORDS
        if done:
            result.bytes_in = len(data) - position
        yield encoded([(TAIL_START, seq, result)])
        if done:
            return
        seq += 1


def parquet_rows(job: Job) -> Task:
    """The task of a Parquet file's rows: numbered as the lines of its CSV export (the n-th row
    of the file is line n + 1), as text as the command line casts them, tokenised."""
    before = dict(job.splits)

    def run(work: _Work, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        index: dict[int, int] = {}
        seq = 0
        for batch in batches:
            starts = batch.column(batch.num_columns - 1).to_pylist()
            cells = batch.select(range(batch.num_columns - 1))
            for start, group in _runs(starts, list(text_rows(cells))):
                first = before[start] + index.get(start, 0) + 2
                index[start] = index.get(start, 0) + len(group)
                records = ((first + i, list(row)) for i, row in enumerate(group))
                result = work.of_records(records, BlockResult())
                yield encoded([(start, seq, result)])
                seq += 1
        yield _ends(index)

    return _task(job, run)


def _runs(
    starts: list[int], rows: list[tuple[str, ...]]
) -> Iterator[tuple[int, list[tuple[str, ...]]]]:
    """The rows of a batch in runs of one split."""
    begin = 0
    for i in range(1, len(starts) + 1):
        if i == len(starts) or starts[i] != starts[begin]:
            yield starts[begin], rows[begin:i]
            begin = i


# What a task of a DataFrame hands back: rows of four kinds. ``row``: an output row's cells;
# ``reject``: a problem (line within the partition, column, code); ``block``: a batch's counts
# and the subject index's references; ``failed``: the deployment could not be
# opened. Lines are numbered within the partition (its first row is line 2); the driver adds
# the rows of the partitions before.
FRAME_SCHEMA = (
    "kind string, part long, line long, cells array<string>, column string, code string, "
    "rows_in long, rows_out long, refs binary, ref_starts array<long>, message string"
)
_FRAME = pa.schema(
    [
        ("kind", pa.string()), ("part", pa.int64()), ("line", pa.int64()),
        ("cells", pa.list_(pa.string())), ("column", pa.string()), ("code", pa.string()),
        ("rows_in", pa.int64()), ("rows_out", pa.int64()), ("refs", pa.binary()),
        ("ref_starts", pa.list_(pa.int64())), ("message", pa.string()),
    ]
)  # fmt: skip


def frame_rows(job: Job) -> Task:
    """The task of a DataFrame's partition: its rows as text (as a Parquet file's are read),
    numbered within the partition, tokenised by the command line's code, by Arrow batch."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext  # noqa: PLC0415 - only in an executor

        context = TaskContext.get()
        assert context is not None  # run by Spark, in a task
        part = context.partitionId()
        try:
            work = _work(job)
        except Exception as error:  # noqa: BLE001 - handed to the driver as a code
            yield _frame_failed(part, error)
            return
        seen = 0
        try:
            for batch in batches:
                rows = list(text_rows(batch))
                records = ((seen + i + 2, list(row)) for i, row in enumerate(rows))
                with collector_paused():
                    result = work.of_records(records, BlockResult())
                seen += len(rows)
                yield _frame_batch(_frame_rows(part, result))
        except DatabaseUnavailable as error:  # staging: handed to the driver as a code too
            yield _frame_failed(part, error)

    return run


def _frame_failed(part: int, error: BaseException) -> pa.RecordBatch:
    """The row of :data:`FRAME_SCHEMA` that tells the driver why a partition's task stopped."""
    message, code = _failure(error)
    return _frame_batch([{"kind": "failed", "part": part, "code": code, "message": message}])


def _frame_rows(part: int, result: BlockResult) -> list[dict[str, object]]:
    """A batch's result as rows of :data:`FRAME_SCHEMA`: its output rows, its rejects, and one
    row of its counts and references."""
    cells = csv.reader(io.StringIO(result.output, newline=""))
    rows: list[dict[str, object]] = [{"kind": "row", "cells": row} for row in cells]
    rows += [
        {"kind": "reject", "part": part, "line": line, "column": column, "code": code}
        for line, found in result.rejects
        for column, code in found
    ]
    refs = result.refs
    block = {
        "kind": "block", "part": part, "rows_in": result.rows_in, "rows_out": result.rows_out,
        "refs": None if refs is None else refs.refs,
        "ref_starts": None if refs is None else list(refs.starts),
        "code": None if result.error is None else result.error[1],
        "message": None if result.error is None else result.error[0],
    }  # fmt: skip
    return [*rows, block]


def _frame_batch(rows: list[dict[str, object]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=_FRAME)


def frame_block(row: Mapping[str, Any]) -> BlockResult:
    """A ``block`` row of :data:`FRAME_SCHEMA` back into a result (its counts and references;
    its output and rejects stay in Spark)."""
    result = BlockResult(rows_in=row["rows_in"], rows_out=row["rows_out"])
    _referenced(row, result)
    if row["code"] is not None:
        result.error = (row["message"], row["code"])
    return result
