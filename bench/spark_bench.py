"""Spark in local mode against the fork pool, on the same file (the ``scale`` section).

Both read the same CSV file of customers into the same deployment (SQLite, a fresh home), without
registering, on two cores: the command line's engine with two forked workers, and Spark
``local[2]`` (``tokenise_file(engine="spark:local[2]")``). Spark is timed twice: its first run
starts the JVM and its Python workers (paid once a session), the second is the steady figure. The
two outputs are checked to be the same bytes. Then each registers a file of its own, of as many
new customers (the executors stage the subjects, the driver registers them with the entry).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.data import IDENTIFIER_COLUMNS, write_customer_file

__all__ = ["available", "versus_fork_pool"]

MASTER = "local[2]"


def available() -> bool:
    try:
        import pyspark  # noqa: F401, PLC0415
    except ImportError:
        return False
    return shutil.which("java") is not None


def versus_fork_pool(root: Path, rows: int) -> dict[str, Any]:
    """Rows per second of both engines on one file of ``rows`` customers, and their ratio."""
    from tiers.admin import add_domain, initialise  # noqa: PLC0415
    from tiers.auditing import Access  # noqa: PLC0415
    from tiers.deployment import Deployment  # noqa: PLC0415
    from tiers.files import ColumnSpec, tokenise_file  # noqa: PLC0415
    from tiers.settings import Settings  # noqa: PLC0415

    source = write_customer_file(root / "customers.csv", rows)
    home = root / "home"
    settings = Settings(home=home, argon2_profile="test")
    access = Access("bench", "operator", "benchmark", datetime.now(UTC))
    initialise(settings, access=access)
    # The executors open the deployment from the environment Spark starts with.
    saved = dict(os.environ)
    os.environ["TIERS_HOME"] = str(home)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    deployment = Deployment.open(settings)
    try:
        add_domain(deployment, access=access, name="casino", role="partner")

        def run(name: str, source: Path = source, **options: Any) -> float:
            started = time.perf_counter()
            tokenise_file(
                deployment, access=access, source=source, output=root / name, domain="casino",
                columns=[ColumnSpec(c, c) for c in IDENTIFIER_COLUMNS],
                keep=["date", "amount", "store"], **{"register": False, **options},
            )  # fmt: skip
            return time.perf_counter() - started

        fork_pool = run("fork.csv", workers=2)
        first = run("spark.csv", engine=f"spark:{MASTER}")
        steady = run("spark.csv", engine=f"spark:{MASTER}")
        for_fork, for_spark = (
            write_customer_file(root / f"new-{n}.csv", rows, first=n * rows) for n in (1, 2)
        )
        fork_registering = run("fork-new.csv", for_fork, workers=2, register=True)
        spark_registering = run("spark-new.csv", for_spark, engine=f"spark:{MASTER}", register=True)
    finally:
        deployment.close()
        _stop_spark()
        os.environ.clear()
        os.environ.update(saved)
    if (root / "fork.csv").read_bytes() != (root / "spark.csv").read_bytes():
        raise AssertionError("Spark's output is not the fork pool's")
    return {
        "rows": rows,
        "fork_pool_rows_per_second": round(rows / fork_pool),
        "spark_rows_per_second": round(rows / steady),
        "spark_first_run_seconds": round(first, 1),
        "spark_vs_fork_pool": round(fork_pool / steady, 3),
        "fork_pool_registering_rows_per_second": round(rows / fork_registering),
        "spark_registering_rows_per_second": round(rows / spark_registering),
        "spark_vs_fork_pool_registering": round(fork_registering / spark_registering, 3),
    }


def _stop_spark() -> None:
    from pyspark.sql import SparkSession  # noqa: PLC0415

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
