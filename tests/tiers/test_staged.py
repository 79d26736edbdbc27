"""What a Spark job's executors stage and its driver registers (:mod:`tiers.storage.staged`,
``tiers.spark``'s staging), on both databases and without Spark: a row staged twice (a task
Spark ran again) is registered once, with its card enrolled; the rows of a destroyed key
version are dropped; a job that outlives its staged rows fails rather than register part of
them. (A failed job's rows, and those of drivers that died, are dropped by the job:
``tests/tiers/test_spark.py``.)
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select

from errors import StateConflict
from tests.conftest import ACCESS, Database
from tiers import spark
from tiers.admin import add_domain, destroy_key, rotate_key
from tiers.deployment import Deployment
from tiers.storage import staged, subjects
from tiers.storage.tables import cards, staged_subjects
from tiers.tokenisation import Registrar, Tokeniser, registrar_for

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def casino(deployment: Deployment) -> Deployment:
    add_domain(deployment, name="casino", role="partner", access=ACCESS)
    return deployment


def _rows(n: int, *, cards_every: int = 2) -> list[tuple[bytes, bytes, str]]:
    return [
        (os.urandom(32), os.urandom(20), "card" if i % cards_every == 0 else "email")
        for i in range(n)
    ]


def _stage(
    deployment: Deployment, job: str, rows: list[tuple[bytes, bytes, str]], *,
    version: int = 1, now: datetime = NOW,
) -> None:  # fmt: skip
    with deployment.transaction() as connection:
        domain = deployment.domain(connection, "casino")
        staged.stage(connection, job=job, domain_id=domain.id, version=version, rows=rows, now=now)


def _staged(deployment: Deployment, job: str) -> int:
    with deployment.reading() as connection:
        counted = select(func.count()).select_from(staged_subjects)
        return int(connection.execute(counted.where(staged_subjects.c.job == job)).scalar_one())


def _registrar(deployment: Deployment, connection: Connection) -> Registrar:
    tokeniser = Tokeniser.open(deployment, connection, "casino")
    return registrar_for(deployment, connection, tokeniser, NOW, held=None, skip_known=False)


def test_staged_twice_registered_once_with_its_cards_enrolled(
    casino: Deployment, database: Database
) -> None:
    rows = _rows(7)
    _stage(casino, "job1", rows)
    _stage(casino, "job1", rows[:4])  # a task that Spark ran again
    _stage(casino, "job2", _rows(3))  # another job, running
    with casino.transaction() as connection:
        registrar = _registrar(casino, connection)
        spark.Staging("job1").registered(connection, registrar)
        assert registrar.registered == 7
        domain = casino.domain(connection, "casino")
        for base, value, _ in rows:
            found = subjects.lookup(connection, domain_id=domain.id, version=1, value=value)
            assert found == base
        enrolled = {bytes(b) for b in connection.execute(select(cards.c.base)).scalars()}
    assert enrolled == {base for base, _, kind in rows if kind == "card"}
    assert _staged(casino, "job1") == 0 and _staged(casino, "job2") == 3
    assert len(database.rows()["subjects"]) == 7


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(0, 12), batch=st.integers(1, 5))
def test_cards_are_read_back_in_batches_each_once(casino: Deployment, n: int, batch: int) -> None:
    job = os.urandom(8).hex()
    rows = _rows(n, cards_every=1) + _rows(3, cards_every=99)[1:]  # and two e-mails
    _stage(casino, job, rows)
    with casino.reading() as connection:
        batches = list(staged.cards(connection, job=job, batch=batch))
    assert all(0 < len(found) <= batch for found in batches)
    assert [base for found in batches for base in found] == sorted(base for base, _, _ in rows[:n])
    with casino.transaction() as connection:
        staged.discard(connection, job=job)


def test_a_job_that_outlives_its_staged_rows_registers_nothing(
    casino: Deployment, database: Database
) -> None:
    _stage(casino, "slow", _rows(3))
    late = spark.Staging("slow", started=datetime.now(UTC) - spark.STAGED_FOR)
    with pytest.raises(StateConflict) as expired, casino.transaction() as connection:
        late.registered(connection, _registrar(casino, connection))
    assert expired.value.code == "staging_expired"
    assert database.rows()["subjects"] == []


def test_destroying_a_key_version_drops_what_was_staged_with_it(casino: Deployment) -> None:
    _stage(casino, "old", _rows(3), version=1)
    rotate_key(casino, access=ACCESS, domain="casino")
    _stage(casino, "new", _rows(2), version=2)
    destroy_key(casino, access=ACCESS, domain="casino", version=1)
    assert _staged(casino, "old") == 0 and _staged(casino, "new") == 2


def test_discarding_names_what_it_drops(casino: Deployment) -> None:
    with pytest.raises(ValueError, match="discard needs"), casino.transaction() as connection:
        staged.discard(connection)
