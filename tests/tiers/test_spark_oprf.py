"""Spark's executors under the ``oprf`` scheme: they open the deployment, find its scheme, and
write byte for byte what the command line's own engine writes, the pseudonyms of the calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS, Database
from tests.tiers.spark_session import Spark, a_larger_file, require_spark, same_on_both, started
from tiers.pseudonyms import Pseudonym
from tiers.tokenisation import pseudonymise_values

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spark]:
    require_spark()
    root = tmp_path_factory.mktemp("spark-oprf")
    with started(Database("sqlite", root / "var"), root, scheme="oprf") as made:
        yield made


def test_spark_writes_the_oprf_pseudonyms_of_the_command_line(spark: Spark, tmp_path: Path) -> None:
    assert spark.deployment.scheme == "oprf"
    spark.split_bytes(4096)
    output, _, report = same_on_both(spark, tmp_path, a_larger_file(600, quoted_from=400))
    assert report.rows_out > 500
    first = output.decode("utf-8-sig").splitlines()[1].split(",")
    assert len(Pseudonym.parse(first[0]).value) == 32  # an element, not an HMAC
    assert pseudonymise_values(
        spark.deployment, access=ACCESS, domain="casino", kind="card", values=["10000000"]
    ) == [first[0]]
