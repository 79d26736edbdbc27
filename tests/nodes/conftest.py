"""A cluster of real nodes for a test: started on its own PostgreSQL schema, stopped after."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.nodes.cluster import Cluster, nginx_available


@pytest.fixture
def cluster(database: Database, tmp_path: Path) -> Iterator[Cluster]:
    if database.backend != "postgresql":
        pytest.skip("several nodes share a PostgreSQL; SQLite serves one host")
    if not nginx_available():
        if os.environ.get("TIERS_REQUIRE_NGINX") == "1":
            pytest.fail("TIERS_REQUIRE_NGINX=1 but nginx is not installed")
        pytest.skip("nginx is not installed (Debian's nginx-light)")
    made = Cluster(database, tmp_path / "cluster")
    made.root.mkdir()
    try:
        yield made
    finally:
        made.close()
