"""Batch tokenisation on Spark (local mode, a real JVM): the output and rejects of
``tokenise_file(engine="spark:…")`` are byte for byte those of the command line's own engine, on
random small files cut into many splits and on one larger file; the job is one access-log entry;
an executor that opens another deployment fails the job and leaves nothing behind.

The executors open the deployment from their environment: the module starts one session for
one home (``spark``, on SQLite; ``test_spark_postgres.py`` does it on PostgreSQL) and keeps it
for all its tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from errors import ConfigurationError, NotFound, StateConflict
from tests.conftest import ACCESS, Database
from tests.tiers.spark_session import (
    COLUMNS,
    ENGINE,
    Spark,
    a_larger_file,
    require_spark,
    same_on_both,
    started,
    tokenised,
)
from tests.tiers.test_fastpath import csv_files
from tiers.admin import add_domain, initialise, rotate_key
from tiers.audit_ops import lookup_subject
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, FileReport
from tiers.spark import STAGED_FOR, SparkFile, tokenise_frame
from tiers.storage import staged
from tiers.tokenisation import Tokeniser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spark]:
    require_spark()
    root = tmp_path_factory.mktemp("spark")
    with started(Database("sqlite", root / "var"), root) as made:
        yield made
        # whatever the module's jobs registered, the index names subjects that exist, and no
        # job left anything staged
        assert {} == {fault: n for fault, n in made.database.integrity_faults().items() if n}
        assert made.database.rows()["staged_subjects"] == []


AUDITOR = replace(ACCESS, actor="dpo", role="auditor", purpose="DPO request 9")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=csv_files(), split=st.sampled_from([64, 256, 4096]))
@example(data=b'card,email,amount\n10000001,"a@example.fr\n",1\n10000002,b@example.fr,2\n', split=8)
@example(data=b'"card",email,amount\n10000001,a@example.fr,1\n', split=64)
@example(data=b"card;email;amount\r\n10000001;x;1\r\n\xff;b@example.fr;2\r\n", split=16)
def test_spark_writes_what_the_command_line_writes(
    spark: Spark, tmp_path: Path, data: bytes, split: int
) -> None:
    spark.split_bytes(split)
    same_on_both(spark, tmp_path, data)


def test_a_larger_file_in_many_splits_then_quoted_to_its_end(spark: Spark, tmp_path: Path) -> None:
    spark.split_bytes(64 * 1024)
    data = a_larger_file(30_000, quoted_from=20_000)
    output, rejects, report = same_on_both(spark, tmp_path, data)
    assert report.rows_in == 30_000 and 0 < report.rows_rejected < 1_500
    assert output.count(b'with ""quotes""') > 2_000  # the tail's rows, read by one task
    assert b"client1@example.fr" not in output and b"10000001" not in output
    assert rejects.startswith(b"line,column,code\r\n")


def test_a_cp1252_file_and_a_named_delimiter(spark: Spark, tmp_path: Path) -> None:
    spark.split_bytes(128)
    # \xe9 is é in cp1252; \x81 is a byte cp1252 leaves undefined
    data = b"card;email;amount\r\n10000001;anne@example.fr;caf\xe9\r\n"
    data += b"10000002;b@example.fr;\x81\r\n"
    _, rejects, _ = same_on_both(spark, tmp_path, data, encoding="cp1252", delimiter=";")
    assert rejects.endswith(b"3,amount,bad_encoding\r\n")


def test_a_parquet_file_gives_the_command_lines_output(spark: Spark, tmp_path: Path) -> None:
    spark.split_bytes(512)
    count = 400
    table = pa.table(
        {
            "card": [str(10_000_000 + n) if n % 50 else "12" for n in range(count)],
            "email": [f"p{n}@example.fr" for n in range(count)],
            "amount": pa.array([n / 4 if n % 7 else None for n in range(count)]),
        }
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source, row_group_size=40)
    output, _, report = same_on_both(spark, tmp_path, source, name="in.parquet")
    assert report.rows_rejected == count // 50
    assert pq.read_table(pa.BufferReader(output)).num_rows == report.rows_out


def test_a_dataframe_gives_the_rows_and_rejects_of_its_file(spark: Spark, tmp_path: Path) -> None:
    """tokenise_frame on the DataFrame Spark reads from a Parquet file: the output rows and
    the rejects (a DataFrame of line, column and code) of the command line on that file."""
    spark.split_bytes(512)
    count = 300
    table = pa.table(
        {
            "amount": [f"{n}.50" if n % 9 else "=1+1" for n in range(count)],
            "card": [str(30_000_000 + n) if n % 40 else "12" for n in range(count)],
            "email": [f"f{n}@example.fr" if n % 25 else "nope" for n in range(count)],
        }
    )
    source = tmp_path / "frame.parquet"
    pq.write_table(table, source, row_group_size=30)
    local = tokenised(spark.deployment, tmp_path, source, name="frame.parquet", register=True)
    assert isinstance(local[2], FileReport)
    before = len(spark.database.audit_entries())
    frame = spark.session.read.parquet(str(source))
    assert frame.rdd.getNumPartitions() > 1
    tokens = tokenise_frame(
        spark.deployment, access=ACCESS, frame=frame, domain="casino", columns=COLUMNS,
        keep=["amount"],
    )  # fmt: skip
    try:
        expected = pq.read_table(pa.BufferReader(local[0])).to_pylist()
        assert [row.asDict() for row in tokens.output.collect()] == expected
        rejects = [(r.line, r.column, r.code) for r in tokens.rejects.orderBy("line").collect()]
        lines = local[1].decode().splitlines()[1:]
        assert [f"{line},{column},{code}" for line, column, code in rejects] == lines
        assert (tokens.rows_in, tokens.rows_out) == (local[2].rows_in, local[2].rows_out)
    finally:
        tokens.unpersist()
    entries = spark.database.audit_entries()
    assert len(entries) == before + 1
    assert entries[-1].detail["input"] == "dataframe" and entries[-1].counts.records_in == count
    assert b"f1@example.fr" not in str(entries[-1].as_dict()).encode()


def test_a_dataframe_of_new_customers_is_registered_by_its_executors(spark: Spark) -> None:
    rows = [(str(60_000_000 + n), f"n{n}@example.fr") for n in range(50)]
    frame = spark.session.createDataFrame(rows, "card string, email string").repartition(3)
    subjects = len(spark.database.rows()["subjects"])
    tokens = tokenise_frame(
        spark.deployment, access=ACCESS, frame=frame, domain="galeries", columns=COLUMNS
    )
    tokens.unpersist()
    assert tokens.registered == 2 * 50
    assert len(spark.database.rows()["subjects"]) == subjects + 2 * 50
    entry = spark.database.audit_entries()[-1]
    assert entry.detail["registered"] == 2 * 50 and entry.detail["input"] == "dataframe"
    found = lookup_subject(
        spark.deployment, access=AUDITOR, domain="galeries", kind="email", value="n7@example.fr"
    )
    assert entry.seq in [e.seq for e in found]


def test_a_dataframe_is_checked_before_anything_runs(spark: Spark) -> None:
    frame = spark.session.createDataFrame([("10000001", "x")], "card string, note string")
    with pytest.raises(NotFound) as unknown:
        tokenise_frame(
            spark.deployment, access=ACCESS, frame=frame, domain="casino", columns=COLUMNS
        )
    assert unknown.value.code == "unknown_column"
    with pytest.raises(NotFound) as no_domain:
        tokenise_frame(
            spark.deployment, access=ACCESS, frame=frame, domain="nowhere",
            columns=[ColumnSpec("card", "card")],
        )  # fmt: skip
    assert no_domain.value.code == "unknown_domain"


def test_the_job_is_one_entry_indexed_under_its_customers(spark: Spark, tmp_path: Path) -> None:
    spark.split_bytes(256)
    data = b"card,email,amount\n" + b"".join(
        b"%d,g%d@example.fr,1\n" % (20_000_000 + n, n) for n in range(1, 120)
    )
    before = len(spark.database.audit_entries())
    subjects = len(spark.database.rows()["subjects"])
    spark_run = tokenised(
        spark.deployment, tmp_path, data, engine=ENGINE, domain="galeries", register=True
    )
    entries = spark.database.audit_entries()
    assert len(entries) == before + 1
    entry = entries[-1]
    assert entry.action == "tokenise_file" and entry.outcome == "ok"
    assert entry.detail["engine"] == "spark" and entry.detail["registered"] == 2 * 119
    assert (entry.counts.records_in, entry.counts.records_out) == (119, 119)
    found = lookup_subject(
        spark.deployment, access=AUDITOR, domain="galeries", kind="card", value="20000077"
    )
    assert entry.seq in [e.seq for e in found]
    assert len(spark.database.rows()["subjects"]) == subjects + 2 * 119  # registered
    # the same file again, by the command line: the same output, the same subjects
    local = tokenised(spark.deployment, tmp_path, data, domain="galeries", register=True)
    assert local[:2] == spark_run[:2]
    assert len(spark.database.rows()["subjects"]) == subjects + 2 * 119


def _staged(spark: Spark, job: str) -> list[tuple[object, ...]]:
    return [row for row in spark.database.rows()["staged_subjects"] if row[0] == job]


def test_the_executors_stage_what_they_register_before_the_driver_writes(
    spark: Spark, tmp_path: Path
) -> None:
    """The executors write the job's registrations themselves, in bulk, before the driver opens
    its transaction; a job that fails after them leaves nothing registered, nothing staged. A
    job first sweeps what drivers that died staged, once old."""
    now = datetime.now(UTC)
    with spark.deployment.transaction() as connection:
        casino = spark.deployment.domain(connection, "casino")
        for job, at in (("dead", now - STAGED_FOR - timedelta(minutes=1)), ("alive", now)):
            row = (os.urandom(32), os.urandom(20), "email")
            staged.stage(connection, job=job, domain_id=casino.id, version=1, rows=[row], now=at)
    spark.split_bytes(256)
    source = tmp_path / "staged.csv"
    source.write_bytes(
        b"card,email,amount\n"
        + b"".join(b"%d,s%d@example.fr,1\n" % (30_000_000 + n, n) for n in range(60))
    )
    read = SparkFile.surveyed(
        ENGINE.removeprefix("spark:"), source, parquet=False, encoding="utf-8", delimiter=None
    )
    before = spark.database.rows()["subjects"]
    with (
        pytest.raises(RuntimeError),
        read.run(spark.deployment, "casino", COLUMNS, ["amount"], register=True) as run,
    ):
        name = run.staging.name
        assert _staged(spark, "dead") == [] and len(_staged(spark, "alive")) == 1
        rows = _staged(spark, name)
        assert len(rows) == 120 and sorted({row[5] for row in rows}) == ["card", "email"]
        assert spark.database.rows()["subjects"] == before  # the driver registered nothing yet
        raise RuntimeError("the driver fails before its transaction")
    assert _staged(spark, name) == [] and spark.database.rows()["subjects"] == before
    assert len(_staged(spark, "alive")) == 1  # another job's, running
    with spark.deployment.transaction() as connection:
        staged.discard(connection, job="alive")


def test_a_rotation_during_the_job_fails_it_at_the_driver(spark: Spark, tmp_path: Path) -> None:
    add_domain(spark.deployment, name="sncf", role="partner", access=ACCESS)
    source = tmp_path / "rotated.csv"
    source.write_bytes(b"card,email,amount\n40000001,r@example.fr,1\n")
    read = SparkFile.surveyed(
        ENGINE.removeprefix("spark:"), source, parquet=False, encoding="utf-8", delimiter=None
    )
    before = spark.database.rows()["subjects"]
    with (
        pytest.raises(StateConflict) as changed,
        read.run(spark.deployment, "sncf", COLUMNS, ["amount"], register=True) as run,
    ):
        assert len(_staged(spark, run.staging.name)) == 2
        rotate_key(spark.deployment, access=ACCESS, domain="sncf")
        with spark.deployment.transaction() as connection:
            tokeniser = Tokeniser.open(spark.deployment, connection, "sncf")
            list(run.blocks(spark.deployment, connection, tokeniser))
    assert changed.value.code == "keys_changed"
    assert _staged(spark, run.staging.name) == []
    assert spark.database.rows()["subjects"] == before


def test_executors_that_cannot_stage_fail_the_job_with_a_code(spark: Spark, tmp_path: Path) -> None:
    """A database that refuses the executors' writes (here, their table gone) fails the job
    with the executors' code, and nothing is written or registered."""
    data = b"card,email,amount\n50000001,u@example.fr,1\n50000002,v@example.fr,2\n"
    before = spark.database.rows()["subjects"]
    with spark.deployment.transaction() as connection:
        connection.exec_driver_sql("ALTER TABLE staged_subjects RENAME TO staged_away")
    try:
        outcome = tokenised(spark.deployment, tmp_path, data, engine=ENGINE, register=True)
    finally:
        with spark.deployment.transaction() as connection:
            connection.exec_driver_sql("ALTER TABLE staged_away RENAME TO staged_subjects")
    assert outcome == ("ConfigurationError", "executor_unavailable")
    assert not (tmp_path / "spark.out").exists()
    assert spark.database.rows()["subjects"] == before
    failed = spark.database.audit_entries()[-1]
    assert failed.action == "tokenise_file" and failed.outcome != "ok"


def test_nothing_clear_and_no_key_is_left_in_sparks_directories(spark: Spark) -> None:
    """Run after the others (file order): Spark's local directory, where it spills, holds none
    of the files' clear values and none of the deployment's keys."""
    found = b"".join(p.read_bytes() for p in spark.local_dir.rglob("*") if p.is_file())
    for clear in (b"client1@example.fr", b"g77@example.fr", b"p11@example.fr", b"anne@example"):
        assert clear not in found
    secrets = [spark.database.home / "master.key"]
    assert all(path.read_bytes().strip() not in found for path in secrets)


def test_an_executor_that_opens_another_deployment_fails_the_job(
    spark: Spark, tmp_path: Path
) -> None:
    other = Database("sqlite", tmp_path / "other")
    initialise(other.settings(), access=ACCESS)
    deployment = Deployment.open(other.settings())
    try:
        add_domain(deployment, name="casino", role="partner", access=ACCESS)
        data = b"card,email,amount\n10000001,a@example.fr,1\n"
        outcome = tokenised(deployment, tmp_path, data, engine=ENGINE, register=True)
        frame = spark.session.createDataFrame([("10000001",)], "card string")
        with pytest.raises(ConfigurationError) as refused:
            tokenise_frame(
                deployment, access=ACCESS, frame=frame, domain="casino",
                columns=[ColumnSpec("card", "card")],
            )  # fmt: skip
        assert refused.value.code == "executor_unavailable"
        assert "wrong_deployment" in refused.value.message
    finally:
        deployment.close()
    assert outcome == ("ConfigurationError", "executor_unavailable")
    assert not (tmp_path / "spark.out.rejects.csv").exists()
    assert other.rows()["subjects"] == []
    failed = other.audit_entries()[-1]
    assert failed.action == "tokenise_file" and failed.outcome != "ok"


def test_paths_and_engines_that_cannot_work_are_refused(spark: Spark, tmp_path: Path) -> None:
    missing = tokenised(spark.deployment, tmp_path, tmp_path / "none.csv", engine=ENGINE)
    assert missing == ("NotFound", "no_such_file")
    (tmp_path / "parts").mkdir()
    for n in (1, 2):
        (tmp_path / "parts" / f"{n}.csv").write_bytes(b"card,email,amount\n10000001,a@b.fr,1\n")
    several = tokenised(spark.deployment, tmp_path, tmp_path / "parts", engine=ENGINE)
    assert several == ("InvalidRequest", "several_files")
    for engine in ("flink", "sparky:local"):
        refused = tokenised(spark.deployment, tmp_path, b"card\n1\n", engine=engine)
        assert refused == ("InvalidRequest", "unknown_engine")
    empty = tokenised(spark.deployment, tmp_path, b"", engine=ENGINE)
    assert empty == ("InvalidFile", "empty_file")
    header_only = tokenised(spark.deployment, tmp_path, b"card,email,amount\n", engine=ENGINE)
    assert header_only == ("InvalidFile", "no_rows")
    for options in ({"keep": ["nowhere"]}, {"columns": [ColumnSpec("iban", "card")]}):
        unknown = tokenised(
            spark.deployment, tmp_path, b"card,email,amount\n10000001,a@b.fr,1\n",
            engine=ENGINE, **options,
        )  # fmt: skip
        assert unknown == ("NotFound", "unknown_column")


def test_the_command_line_runs_spark_and_writes_the_same_file(spark: Spark, tmp_path: Path) -> None:
    """``tiers tokenise-file --engine spark:local[1]``, a process of its own (its own JVM)."""
    source = tmp_path / "in.csv"
    source.write_bytes(a_larger_file(2_000, quoted_from=1_500, seed=3))
    # as an operator's shell has it: this process's own sessions set SPARK_SUBMIT_OPTS
    shell = {name: value for name, value in os.environ.items() if name != "SPARK_SUBMIT_OPTS"}
    env = {**shell, **spark.database.env(), "TIERS_PURPOSE": "test"}
    tiers = Path(sys.executable).with_name("tiers")
    outputs = []
    for engine in ("local", "spark:local[1]"):
        output = tmp_path / f"{engine[:5]}.csv"
        command = [str(tiers), "tokenise-file", str(source), "-o", str(output), "--domain",
                   "casino", "--column", "card=card", "--column", "email=email",
                   "--keep", "amount", "--no-register", "--engine", engine]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
        assert done.returncode == 2, done.stderr[-2000:]  # some rows are rejected
        assert b"client1@example.fr" not in done.stderr + done.stdout
        # Spark's JVM logs its errors only: the command's own lines are what its user reads
        assert b"log4j" not in done.stderr and b" WARN " not in done.stderr, done.stderr[-2000:]
        outputs.append((output.read_bytes(), Path(f"{output}.rejects.csv").read_bytes()))
    assert outputs[0] == outputs[1]
    # an operator's own logging configuration is used instead
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "log4j2.properties").write_text(
        "rootLogger.level = info\nrootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\nappender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
    )
    done = subprocess.run(
        command, env={**env, "SPARK_CONF_DIR": str(conf)}, capture_output=True, timeout=300,
        check=False,
    )  # fmt: skip
    # (Spark says it sets the shell's level, which the command's own configuration keeps)
    assert done.returncode == 2 and b"Setting default log level" in done.stderr, done.stderr
