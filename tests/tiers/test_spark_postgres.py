"""Spark's executors on a PostgreSQL deployment (with the master key in the suite's token when
``TIERS_TEST_HSM`` says so, as in CI): each executor opens the database and unwraps the keys
itself, and the job gives the command line's output, registers its subjects once, and is one
access-log entry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, _database, _master_key_of
from tests.tiers.spark_session import Spark, a_larger_file, require_spark, same_on_both, started

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spark]:
    require_spark()
    root = tmp_path_factory.mktemp("spark-postgres")
    with _master_key_of("postgresql") as hsm_key:
        databases = _database("postgresql", root / "var", hsm_key)
        database: Database = next(databases)
        try:
            with started(database, root) as made:
                yield made
        finally:
            next(databases, None)  # the database's integrity checked, its schema dropped


def test_executors_on_postgresql_write_what_the_command_line_writes(
    spark: Spark, tmp_path: Path
) -> None:
    spark.split_bytes(32 * 1024)
    data = a_larger_file(6_000, quoted_from=5_000, seed=11)
    before = len(spark.database.audit_entries())
    output, _, report = same_on_both(spark, tmp_path, data, domain="galeries", register=True)
    assert report.rows_in == 6_000 and b"client12@example.fr" not in output
    entries = spark.database.audit_entries()
    assert [e.action for e in entries[before:]] == ["tokenise_file", "tokenise_file"]
    assert entries[-1].detail["engine"] == "spark"
    # both runs registered the same customers, a card and an e-mail a row written: each once
    assert len(spark.database.rows()["subjects"]) == 2 * report.rows_out
