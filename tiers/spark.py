"""Batch tokenisation on Apache Spark: ``tiers tokenise-file --engine spark[:MASTER_URL]`` for a
file (:class:`SparkFile`, used by :func:`tiers.files.tokenise_file`), and :func:`tokenise_frame`
for a DataFrame already in Spark.

The command runs as Spark's driver: it checks the call, opens the outputs and the file's one
transaction, and writes the output, the rejects and the access-log entry, exactly as without
Spark (:func:`tiers.files.tokenise_file`). What Spark adds is where the rows are read and
tokenised: in executors, on the trusted third party's own cluster, which open the deployment
themselves (:mod:`tiers._spark_tasks`). A file is read twice: a survey (its header, the lines of
each split, where quoting begins), then the tokenisation. The executors' results are computed in
parallel and kept by Spark (in memory, spilled to its local directories when they do not fit:
pseudonyms, kept cells and rejects, never a clear identifier or a key), then read back by the
driver in file order. So the output is byte for byte the command line's, line numbers of the
rejects included.

The executors register the subjects themselves, in bulk: each writes what its blocks register
into the job's staged subjects (:mod:`tiers.storage.staged`), in transactions of its own, while
the driver holds no transaction (on SQLite, it would hold the only write lock). Once every block
is done, the driver opens the file's transaction, moves the staged rows into the subjects and
their index in two statements, enrols the cards among them, and writes the entry: the job's
registrations and its entry are committed together. A job that fails has its staged rows
dropped, so it leaves nothing registered; rows whose driver died before it could drop them are
swept by the next job once they are :data:`STAGED_FOR` old, and a job that runs longer fails.

Spark comes from the ``spark`` extra (``pip install 'tiers[spark]'``); on a cluster, ``tiers``
must be installed on every executor, with the deployment's settings in their environment.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from audit import Action, Counts
from errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidFile,
    InvalidRequest,
    NotFound,
    StateConflict,
)
from tiers import _spark_tasks as tasks
from tiers import _subject_index as subject_index
from tiers._csvio import CHECKED_BYTES, prepared, read_header, text_of
from tiers._fastpath import BlockResult
from tiers._file_entry import file_registrar, recorded
from tiers._file_rows import ColumnSpec, plan_of
from tiers.auditing import Access, audited
from tiers.authorisation import require
from tiers.deployment import Deployment
from tiers.storage import staged
from tiers.tokenisation import Registrar, Tokeniser

__all__ = [
    "STAGED_FOR",
    "FrameTokens",
    "SparkFile",
    "SparkRun",
    "Staging",
    "spark_master",
    "tokenise_frame",
]

# How long the rows a job staged are kept for it: older ones are swept by the next job (their
# driver died), so a job that runs longer fails rather than register half of its subjects.
STAGED_FOR = timedelta(days=7)

_ENGINES = "local or spark[:MASTER_URL]"


def spark_master(engine: str | None) -> str | None:
    """The Spark master URL an ``--engine`` names (``spark`` alone: ``local[*]``), or None for
    ``local`` (this process and its own workers)."""
    if engine is None or engine == "local":
        return None
    name, _, master = engine.partition(":")
    if name != "spark":
        raise InvalidRequest(f"the engine must be {_ENGINES}", code="unknown_engine")
    return master or "local[*]"


def _session(master: str) -> Any:
    """Spark's session on ``master`` (the running one when there is one)."""
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - an optional dependency
    except ImportError:
        raise ConfigurationError(
            "Spark is not installed: pip install 'tiers[spark]'", code="spark_missing"
        ) from None
    # Local workers run this interpreter (the one tiers is installed in).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    _quiet_jvm()
    builder = SparkSession.builder.master(master).appName("tiers tokenise-file")
    for name, value in _CONF.items():
        builder = builder.config(name, value)
    with warnings.catch_warnings():  # PySpark's warning about pandas' newest version
        warnings.simplefilter("ignore", FutureWarning)
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _quiet_jvm() -> None:
    """Spark's JVM started with errors only in its log (``spark_log4j2.properties``), unless
    the operator configured its logging: ``SPARK_SUBMIT_OPTS`` naming a log4j configuration,
    or a ``log4j2.properties`` in ``SPARK_CONF_DIR``. Spark reads ``SPARK_SUBMIT_OPTS`` when
    it starts the driver's JVM; what the variable holds already is kept."""
    options = os.environ.get("SPARK_SUBMIT_OPTS", "")
    conf_dir = os.environ.get("SPARK_CONF_DIR")
    if "log4j" in options or (conf_dir and (Path(conf_dir) / "log4j2.properties").exists()):
        return
    quiet = Path(__file__).with_name("spark_log4j2.properties")
    os.environ["SPARK_SUBMIT_OPTS"] = f"{options} -Dlog4j2.configurationFile=file:{quiet}".strip()


# Spark's own web UI and console progress bar are off: the command shows its own progress.
_CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}


def _spark_path(source: str | Path) -> str:
    """A local path made absolute (an executor's working folder is not the caller's); a URL
    (``hdfs://``, ``s3a://``, ``file:``) as it is."""
    text = str(source)
    return text if ":" in text.split("/", 1)[0] else str(Path(text).resolve())


@dataclass(slots=True)
class SparkFile:
    """A CSV or Parquet file read by Spark, surveyed: its header and delimiter, its size, the
    lines before each of its splits, and the first line that only a CSV parser can read."""

    session: Any
    path: str
    parquet: bool
    header: list[str]
    delimiter: str
    encoding: str
    size: int
    splits: tuple[tuple[int, int], ...]
    unsafe: int

    @classmethod
    def surveyed(
        cls, master: str, source: str | Path, *, parquet: bool, encoding: str,
        delimiter: str | None,
    ) -> SparkFile:  # fmt: skip
        session = _session(master)
        path = _spark_path(source)
        with _spark_errors():
            if parquet:
                return cls._parquet(session, path)
            return cls._csv(session, path, encoding, delimiter)

    @classmethod
    def _parquet(cls, session: Any, path: str) -> SparkFile:
        from pyspark.sql import functions as F  # noqa: PLC0415

        frame = session.read.parquet(path)
        starts = frame.select(F.input_file_name().alias("file"), F.input_file_block_start())
        found = starts.groupBy(*starts.columns).count().collect()
        _one_file(row[0] for row in found)
        splits = _before(sorted((row[1], row[2]) for row in found))
        return cls(session, path, True, list(frame.columns), ",", "utf-8", 0, splits, 0)

    @classmethod
    def _csv(cls, session: Any, path: str, encoding: str, delimiter: str | None) -> SparkFile:
        survey = _mapped(_lines(session, path, with_file=True), tasks.survey, tasks.SURVEY_SCHEMA)
        found = sorted(survey.collect(), key=lambda row: row["start"])
        if not found:
            raise InvalidFile("the file is empty (no header line)", code="empty_file")
        _one_file(row["file"] for row in found)
        splits = _before([(row["start"], row["lines"]) for row in found])
        before = dict(splits)
        unsafe = min(
            (before[row["start"]] + row["unsafe"] + 1 for row in found if row["unsafe"] >= 0),
            default=0,
        )
        heads = b"".join(row["head"] for row in found if row["head"] is not None)
        readable, found_delimiter = prepared(
            io.BytesIO(heads[:CHECKED_BYTES]), encoding=encoding, delimiter=delimiter
        )
        head = readable.read()
        first = head if unsafe == 1 else head.split(b"\n", 1)[0] + b"\n"
        reader = csv.reader(text_of(io.BytesIO(first), "utf-8"), delimiter=found_delimiter)
        header = read_header(reader)
        size = sum(row["bytes"] for row in found)
        return cls(session, path, False, header, found_delimiter, encoding, size, splits, unsafe)

    @contextmanager
    def run(
        self, deployment: Deployment, domain: str, columns: Sequence[ColumnSpec],
        keep: Sequence[str], *, register: bool,
    ) -> Iterator[SparkRun]:  # fmt: skip
        """The job run by the executors, every block tokenised and its registrations staged,
        before the driver opens its transaction; its results kept by Spark until the context
        ends. Each executor checks that it opened the driver's ``deployment``
        (:func:`tiers._spark_tasks.identity`) and finds the keys the driver found active."""
        with _staging(deployment) as staging, _spark_errors():
            job = tasks.Job(
                domain, tuple(self.header), tuple(columns), tuple(keep), self.delimiter,
                self.encoding, register, self.splits, self.unsafe,
                *_driver_keys(deployment, domain), staging.name,
            )  # fmt: skip
            order = [start for start, _ in self.splits]
            if self.unsafe:
                order.append(tasks.TAIL_START)
            frame = self._tokenised(job).persist(_storage_level())
            try:
                frame.count()  # every block tokenised at once, by every executor
                yield SparkRun(job, staging, frame, order)
            finally:
                frame.unpersist()

    def _tokenised(self, job: tasks.Job) -> Any:
        from pyspark.sql import functions as F  # noqa: PLC0415

        session, schema = self.session, tasks.RESULT_SCHEMA
        if self.parquet:
            frame = session.read.parquet(self.path)
            frame = frame.select(*frame.columns, F.input_file_block_start().alias("__start"))
            return _mapped(frame, tasks.parquet_rows(job), schema)
        frames = _mapped(
            _lines(session, self.path, with_file=False), tasks.tokenised_lines(job), schema
        )
        if self.unsafe:
            whole = session.read.text(self.path, wholetext=True)
            whole = whole.select(F.col("value").cast("binary"))
            frames = frames.unionByName(_mapped(whole, tasks.tail(job), schema))
        return frames


@dataclass(frozen=True, slots=True)
class Staging:
    """The name a job's executors stage its registrations under, and when the job began."""

    name: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def registered(self, connection: Connection, registrar: Registrar) -> None:
        """What the executors staged, registered in the driver's transaction ``connection``
        by ``registrar`` (:func:`tiers.storage.staged.register`), its cards enrolled, the
        staged rows dropped."""
        if datetime.now(UTC) - self.started >= STAGED_FOR:
            raise StateConflict(
                f"the job ran longer than its staged subjects are kept ({STAGED_FOR.days} days):"
                " run it again on smaller files",
                code="staging_expired",
            )
        registrar.registered += staged.register(
            connection, job=self.name, domain_id=registrar.domain_id,
            version=registrar.version, now=registrar.now,
        )  # fmt: skip
        if registrar.enroller is not None:
            for bases in staged.cards(connection, job=self.name):
                registrar.enroller(bases)
        staged.discard(connection, job=self.name)


@contextmanager
def _staging(deployment: Deployment) -> Iterator[Staging]:
    """A job's staging: what the executors stage is dropped if the job fails (after the
    driver's transaction ended, as the context is entered before it); what jobs whose driver
    died staged more than :data:`STAGED_FOR` ago is swept first."""
    staging = Staging(secrets.token_hex(16))
    _discard(deployment, before=staging.started - STAGED_FOR)
    try:
        yield staging
    except BaseException:
        _discard(deployment, job=staging.name)
        raise


def _discard(
    deployment: Deployment, *, job: str | None = None, before: datetime | None = None
) -> None:
    """Staged rows dropped, in a transaction of their own; if the database does not answer,
    they are left for a later job to sweep."""
    try:
        with deployment.transaction(checkpoint=False) as connection:
            staged.discard(connection, job=job, before=before)
    except DatabaseUnavailable:
        pass


def _driver_keys(deployment: Deployment, domain: str) -> tuple[str, tuple[int, int, int]]:
    """The driver's deployment (:func:`tiers._spark_tasks.identity`) and the active versions
    of ``domain``'s keys, read without a write transaction (the executors stage while it
    runs)."""
    with deployment.reading() as connection:
        tokeniser = Tokeniser.open(deployment, connection, domain)
        identity = tasks.identity(deployment, connection)
        return identity, tasks.key_versions(deployment, connection, tokeniser)


@dataclass(frozen=True, slots=True)
class SparkRun:
    """A file's job, run by the executors (:meth:`SparkFile.run`): its results, kept by Spark,
    and the registrations it staged."""

    job: tasks.Job
    staging: Staging
    frame: Any
    order: list[int]

    def blocks(
        self, deployment: Deployment, connection: Connection, tokeniser: Tokeniser
    ) -> Iterator[BlockResult]:
        """The blocks of the file in file order, once the driver's transaction
        (``connection``, ``tokeniser``) finds the keys the executors used still active."""
        tasks.same_keys(deployment, connection, tokeniser, self.job)
        with _spark_errors():
            rows = (row.asDict() for row in self.frame.toLocalIterator())
            for row in _in_file_order(rows, self.order):
                yield tasks.decoded(row)

    def register(self, connection: Connection, registrar: Registrar) -> None:
        """The subjects the executors staged, registered in the driver's transaction."""
        self.staging.registered(connection, registrar)


def _mapped(frame: Any, function: Any, schema: str) -> Any:
    """``frame.mapInArrow``, without PySpark's warning about pandas' newest version."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return frame.mapInArrow(function, schema)


def _lines(session: Any, path: str, *, with_file: bool) -> Any:
    """The file's lines cut at ``\\n`` as raw bytes, with the start of their split."""
    from pyspark.sql import functions as F  # noqa: PLC0415

    lines = session.read.text(path, lineSep="\n")
    columns = [F.col("value").cast("binary"), F.input_file_block_start().alias("start")]
    if with_file:
        columns.insert(0, F.input_file_name().alias("file"))
    return lines.select(*columns)


def _before(counts: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """``(start, lines before it)`` of each split, from ``(start, its lines)`` in order."""
    totals = [0, *accumulate(lines for _, lines in counts)]
    return tuple((start, totals[i]) for i, (start, _) in enumerate(counts))


def _one_file(names: Iterator[str] | Any) -> None:
    if len(set(names)) > 1:
        raise InvalidRequest(
            "the path names several files: name one file (its lines are numbered)",
            code="several_files",
        )


def _executor_unavailable(message: str, code: str) -> ConfigurationError:
    """The job's error when an executor could not open the deployment, or lost its database
    while staging: the executor's own message and code, named."""
    return ConfigurationError(
        f"a Spark executor cannot use the deployment: {message} [{code}]",
        code="executor_unavailable",
    )


def _in_file_order(rows: Iterator[dict[str, Any]], order: list[int]) -> Iterator[dict[str, Any]]:
    """The blocks' rows, in the order of their splits: a split's rows arrive in order, each
    split ended by its marker (``seq`` -1); those of a split that comes early (Spark does not
    promise the order of its partitions) are held until the splits before it are done."""
    held: dict[int, list[dict[str, Any]]] = {}
    done: set[int] = set()
    position = 0
    for row in rows:
        if row["failed_code"] is not None:
            raise _executor_unavailable(row["failed_message"], row["failed_code"])
        start = row["start"]
        if row["seq"] == -1:
            done.add(start)
        elif position < len(order) and start == order[position]:
            yield row
        else:
            held.setdefault(start, []).append(row)
        while position < len(order) and order[position] in done:
            position += 1
            if position < len(order):
                yield from held.pop(order[position], [])
    if position != len(order):
        raise ConfigurationError(
            "the Spark job ended before every split of the file was read", code="spark_failed"
        )


@contextmanager
def _spark_errors() -> Iterator[None]:
    """Spark's failures as the service's errors: a path that is not there is ``no_such_file``,
    a file Spark cannot read as Parquet ``not_parquet``; any other ``spark_failed``, with no
    text of Spark's (which could quote the data)."""
    try:
        yield
    except Exception as error:
        if not _is_spark_error(error):
            raise
        text = str(error)
        if "PATH_NOT_FOUND" in text:
            raise NotFound("no such file (as Spark reads the path)", code="no_such_file") from None
        if "parquet" in text.lower() and ("magic number" in text or "not a Parquet" in text):
            raise InvalidFile("the file is not a Parquet file", code="not_parquet") from None
        raise ConfigurationError(
            "the Spark job failed: see Spark's own log", code="spark_failed"
        ) from None


def _is_spark_error(error: BaseException) -> bool:
    module = type(error).__module__
    return module.startswith(("pyspark", "py4j"))


@dataclass(frozen=True, slots=True)
class FrameTokens:
    """A DataFrame tokenised (:func:`tokenise_frame`): its ``output`` (the identifier columns
    as pseudonyms and the kept columns, every column as text, in the frame's order) and its
    ``rejects`` (``line``, ``column``, ``code``: the n-th row of the frame is line n + 1, as
    in its CSV export), both kept by Spark until :meth:`unpersist`; the counts of the access-log
    entry."""

    output: Any
    rejects: Any
    rows_in: int
    rows_out: int
    rows_rejected: int
    registered: int
    results: Any

    def unpersist(self) -> None:
        """Let Spark drop the results (the output and rejects are computed again if read)."""
        self.results.unpersist()


@audited(Action.TOKENISE_FILE)
def tokenise_frame(
    deployment: Deployment, *, access: Access, frame: Any, domain: str,
    columns: Sequence[ColumnSpec], keep: Sequence[str] = (), register: bool = True,
) -> FrameTokens:  # fmt: skip
    """Tokenise the identifier ``columns`` of the Spark DataFrame ``frame`` on its executors,
    which open the deployment themselves (as for a file, :class:`SparkFile`); register the
    subjects and write the one access-log entry, in one transaction, once every row is
    done. The frame is read once; a frame that Spark would compute differently twice (a
    random sample, say) is numbered as it was read."""
    require(access, Action.TOKENISE_FILE, domain)
    deployment.budget.admit(access)
    header = list(frame.columns)
    plan = plan_of(header, columns, keep)
    with _staging(deployment) as staging, _spark_errors():
        job = tasks.Job(
            domain, tuple(header), tuple(columns), tuple(keep), ",", "utf-8", register,
            (), 0, *_driver_keys(deployment, domain), staging.name,
        )  # fmt: skip
        results = _mapped(frame, tasks.frame_rows(job), tasks.FRAME_SCHEMA)
        results = results.persist(_storage_level())
        try:
            results.count()  # every batch tokenised at once, its registrations staged
            counts, parts, registered = _frame_recorded(
                deployment, access, results, job, staging, columns=len(columns),
                kept=len(keep),
            )  # fmt: skip
        except BaseException:
            results.unpersist()
            raise
    return FrameTokens(
        _frame_output(results, plan.header), _frame_rejects(results, parts), counts.records_in,
        counts.records_out, counts.rejected, registered, results,
    )  # fmt: skip


def _frame_recorded(
    deployment: Deployment, access: Access, results: Any, job: tasks.Job, staging: Staging,
    *, columns: int, kept: int,
) -> tuple[Counts, dict[int, int], int]:  # fmt: skip
    """The frame's staged subjects registered and its entry written, in one transaction:
    its counts, the rows of each partition and the count of registrations."""
    with ExitStack() as stack:
        connection = stack.enter_context(deployment.transaction())
        tokeniser = Tokeniser.open(deployment, connection, job.domain)
        tasks.same_keys(deployment, connection, tokeniser, job)
        registrar = file_registrar(
            stack, deployment, connection, tokeniser, access.now, register=job.register
        )
        secret = subject_index.index_secret(deployment.audit_keyring(connection).active)
        touched = subject_index.Gathered(secret)
        counts, parts = _frame_counts(results, touched)
        staging.registered(connection, registrar)
        registered = recorded(
            deployment, access, connection, registrar, touched, domain=job.domain,
            counts=counts, columns=columns, kept=kept, engine="spark", origin="dataframe",
        )  # fmt: skip
    return counts, parts, registered


def _storage_level() -> Any:
    from pyspark import StorageLevel  # noqa: PLC0415

    return StorageLevel.MEMORY_AND_DISK


def _frame_counts(results: Any, touched: subject_index.Gathered) -> tuple[Counts, dict[int, int]]:
    """The counts of every batch read back, and its references gathered; the rows of each
    partition."""
    from pyspark.sql import functions as F  # noqa: PLC0415

    blocks = results.filter(F.col("kind").isin("block", "failed"))
    rows_in = rows_out = rejected = 0
    parts: dict[int, int] = {}
    for row in blocks.toLocalIterator():
        found = row.asDict()
        if found["kind"] == "failed":
            raise _executor_unavailable(found["message"], found["code"])
        block = tasks.frame_block(found)
        if block.error is not None:
            raise InvalidFile(block.error[0], code=block.error[1])
        parts[found["part"]] = parts.get(found["part"], 0) + block.rows_in
        rows_in, rows_out = rows_in + block.rows_in, rows_out + block.rows_out
        rejected += block.rows_in - block.rows_out
        if block.refs is not None:
            touched.blocks.append(block.refs)
    return Counts(rows_in, rows_out, rejected), parts


def _frame_output(results: Any, header: list[str]) -> Any:
    from pyspark.sql import functions as F  # noqa: PLC0415

    rows = results.filter(F.col("kind") == "row")
    return rows.select(*[F.col("cells")[i].alias(name) for i, name in enumerate(header)])


def _frame_rejects(results: Any, parts: dict[int, int]) -> Any:
    """The rejects, numbered in the whole frame: the rows of the partitions before added."""
    from pyspark.sql import functions as F  # noqa: PLC0415

    order = sorted(parts)
    totals = accumulate([0, *(parts[part] for part in order)])
    pairs = [F.lit(value) for pair in zip(order, totals, strict=False) for value in pair]
    before = F.create_map(*pairs)[F.col("part")] if pairs else F.lit(0)
    rejects = results.filter(F.col("kind") == "reject")
    return rejects.select((F.col("line") + before).alias("line"), "column", "code")
