"""Spark in local mode for the tests (a real JVM): a session whose executors open one test
deployment, and the runs that compare Spark's output with the command line's.

The executors find the deployment in their environment: the session is given it as
``spark.executorEnv.*`` (a home, a database URL, the paths of the master key or of the test
token's settings; never a key), so that sessions of one process can open different ones.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from errors import TiersError
from tests.conftest import ACCESS, Database
from tiers.admin import add_domain, initialise
from tiers.deployment import Deployment
from tiers.files import ColumnSpec, FileReport, tokenise_file

COLUMNS = [ColumnSpec("card", "card"), ColumnSpec("email", "email")]
ENGINE = "spark:local[2]"


def _spark_available() -> bool:
    try:
        import pyspark  # noqa: F401, PLC0415
    except ImportError:
        return False
    return shutil.which("java") is not None


@dataclass
class Spark:
    """The module's home (its executors' deployment), opened, and Spark's session on it."""

    database: Database
    deployment: Deployment
    session: Any
    local_dir: Path

    def split_bytes(self, size: int) -> None:
        """Cut the files Spark reads into splits of ``size`` bytes (small: many splits)."""
        self.session.conf.set("spark.sql.files.maxPartitionBytes", str(size))


def require_spark() -> None:
    """Skip the test where Spark cannot run (fail it in CI, ``TIERS_REQUIRE_SPARK=1``)."""
    if not _spark_available():
        if os.environ.get("TIERS_REQUIRE_SPARK") == "1":
            pytest.fail("TIERS_REQUIRE_SPARK=1 but pyspark or java is not installed")
        pytest.skip("Spark needs pyspark (the spark extra) and Java 17")


@contextmanager
def started(database: Database, root: Path, *, scheme: str | None = None) -> Iterator[Spark]:
    """A deployment in ``database`` (of ``scheme``) with the domains casino and galeries, and a
    Spark session whose executors open it."""
    from pyspark.sql import SparkSession  # noqa: PLC0415

    settings_ = database.settings()
    initialise(settings_, access=ACCESS, scheme=scheme)
    deployment = Deployment.open(settings_)
    for name in ("casino", "galeries"):
        add_domain(deployment, name=name, role="partner", access=ACCESS)
    local_dir = root / "spark-local"
    local_dir.mkdir()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master(ENGINE.removeprefix("spark:"))
        .config("spark.ui.enabled", "false")
        .config("spark.local.dir", str(local_dir))
        .config("spark.sql.files.openCostInBytes", "0")
    )
    executors = database.env()
    if "SOFTHSM2_CONF" in os.environ:  # the suite's token (tests/softhsm.py)
        executors["SOFTHSM2_CONF"] = os.environ["SOFTHSM2_CONF"]
    for name, value in executors.items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    session = builder.getOrCreate()
    try:
        yield Spark(database, deployment, session, local_dir)
    finally:
        session.stop()
        deployment.close()


def tokenised(
    deployment: Deployment, tmp: Path, data: bytes | Path, *, engine: str | None = None,
    name: str = "in.csv", domain: str = "casino", **options: Any,
) -> tuple[bytes, bytes, FileReport] | tuple[str, str]:  # fmt: skip
    """The output and rejects of one run, and its report (or the error's class and code)."""
    source = data if isinstance(data, Path) else tmp / name
    if isinstance(data, bytes):
        source.write_bytes(data)
    output = tmp / ("spark.out" if engine else "local.out")
    for left in (output, Path(f"{output}.rejects.csv")):  # by an example before
        left.unlink(missing_ok=True)
    options = {"columns": COLUMNS, "keep": ["amount"], "register": False} | options
    try:
        report = tokenise_file(
            deployment, access=ACCESS, source=source, output=output, domain=domain,
            engine=engine, **options,
        )  # fmt: skip
    except TiersError as error:
        assert not output.exists()
        return type(error).__name__, error.code
    return output.read_bytes(), Path(report.rejects).read_bytes(), report


def same_on_both(spark: Spark, tmp: Path, data: bytes | Path, **options: Any) -> Any:
    local = tokenised(spark.deployment, tmp, data, **options)
    on_spark = tokenised(spark.deployment, tmp, data, engine=ENGINE, **options)
    if isinstance(local, tuple) and len(local) == 3:
        assert isinstance(on_spark, tuple) and len(on_spark) == 3, on_spark
        for name, mine, theirs in zip(("output", "rejects"), on_spark[:2], local[:2], strict=True):
            assert mine == theirs, f"{name}: {first_difference(mine, theirs)}"
        counts = ("rows_in", "rows_out", "rows_rejected", "first_rejects")
        assert [getattr(on_spark[2], n) for n in counts] == [getattr(local[2], n) for n in counts]
    else:
        assert on_spark == local
    return on_spark


def a_larger_file(rows: int, *, quoted_from: int, seed: int = 7) -> bytes:
    """A UTF-8 file with a byte-order mark: good and bad cards and e-mails, kept cells that
    need neutralising, blank lines, and from row ``quoted_from`` on, quoted cells."""
    chance = random.Random(seed)  # noqa: S311 - test data, not a secret
    lines = ["card,email,amount"]
    for n in range(rows):
        card = str(10_000_000 + n) if chance.random() > 0.01 else "12"
        email = f"client{n}@example.fr" if chance.random() > 0.01 else "not-an-email"
        amount = chance.choice(["12.50", "-3", "=1+1", "café", ""])
        if n >= quoted_from and n % 3 == 0:
            amount = f'"{amount}, with ""quotes""\r\nand a line"'
        lines.append(f"{card},{email},{amount}")
        if n % 997 == 0:
            lines.append("")
    return b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"


def first_difference(mine: bytes, theirs: bytes) -> str:
    """Where Spark's file first differs from the command line's: the line number and both
    lines (test data, made up)."""
    lines = zip(mine.splitlines(), theirs.splitlines(), strict=False)
    for number, (a, b) in enumerate(lines, start=1):
        if a != b:
            return f"line {number}: spark {a[:120]!r} != local {b[:120]!r}"
    return f"lengths {len(mine)} and {len(theirs)}"
