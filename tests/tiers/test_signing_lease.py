"""The signing lease (tiers.signing_lease): one process of a PostgreSQL deployment at a time
signs checkpoints; a holder that stops, loses its session or is killed hands it over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from tiers.deployment import Deployment
from tiers.signing_lease import SigningLease
from tiers.storage import make_engine


@pytest.fixture
def engines(deployment: Deployment) -> Iterator[list[Engine]]:
    """Two engines on the deployment's database, as two nodes would have."""
    if deployment.embedded:
        pytest.skip("SQLite serves one host: every process may sign")
    url = deployment.settings.resolved_database_url()
    made = [make_engine(url), make_engine(url)]
    yield made
    for engine in made:
        engine.dispose()


def test_on_sqlite_every_process_signs(deployment: Deployment) -> None:
    if not deployment.embedded:
        pytest.skip("PostgreSQL's processes share one lease")
    assert SigningLease.of(deployment.engine).held()
    assert SigningLease.of(deployment.engine).held()


def test_one_holder_at_a_time_and_a_release_hands_it_over(engines: list[Engine]) -> None:
    first, second = SigningLease.of(engines[0]), SigningLease.of(engines[1])
    assert (True, False) == (first.held(), second.held())
    assert (True, False) == (first.held(), second.held())  # kept, not taken twice
    first.release()
    assert (True, False) == (second.held(), first.held())
    second.release()


def test_a_holder_whose_session_ends_loses_the_lease(engines: list[Engine]) -> None:
    first, second = SigningLease.of(engines[0]), SigningLease.of(engines[1])
    assert first.held()
    with engines[1].connect() as connection:
        holders = (
            connection.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid::text::bigint = :high AND objid::text::bigint = :low"
                ),
                {"high": (first.key >> 32) & 0xFFFFFFFF, "low": first.key & 0xFFFFFFFF},
            )
            .scalars()
            .all()
        )
        assert 1 == len(holders)
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holders[0]})
        connection.commit()
    assert not first.held()  # it never assumes a lease it may have lost
    assert second.held()
    second.release()


def test_a_killed_holder_hands_the_lease_over(
    deployment: Deployment, engines: list[Engine]
) -> None:
    script = (
        "import sys, time\n"
        "from tiers.signing_lease import SigningLease\n"
        "from tiers.storage import make_engine\n"
        "lease = SigningLease.of(make_engine(sys.argv[1]))\n"
        "print(lease.held(), flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, deployment.settings.resolved_database_url()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert "True" == holder.stdout.readline().strip()
        waiting = SigningLease.of(engines[0])
        assert not waiting.held()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        deadline = time.monotonic() + 10
        while not waiting.held():
            assert time.monotonic() < deadline, "the lease of a killed process was never freed"
            time.sleep(0.05)
        waiting.release()
    finally:
        holder.kill()
        holder.wait()
