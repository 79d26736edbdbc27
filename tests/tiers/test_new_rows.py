"""How a stage's rows go into their table on PostgreSQL (storage._dialect.insert_from_stage):
a plain insert of the new rows when the stage is large next to the table, ``ON CONFLICT DO
NOTHING`` otherwise, and after a unique violation that a concurrent transaction caused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from tests.conftest import ACCESS
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.storage import _dialect
from tiers.storage._dialect import COPY_THRESHOLD, bulk_insert_ignoring_duplicates
from tiers.storage.subjects import register
from tiers.storage.tables import pseudonym_index, subjects

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def postgresql(deployment: Deployment) -> Deployment:
    if deployment.embedded:
        pytest.skip("SQLite inserts every stage with INSERT OR IGNORE")
    return deployment


def _bases(numbers: range) -> list[tuple[bytes]]:
    return [(n.to_bytes(32, "big"),) for n in numbers]


@contextmanager
def _statements(connection: Connection) -> Iterator[list[str]]:
    """The statements ``connection`` sends in the block."""
    seen: list[str] = []

    def watch(_conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(connection, "before_cursor_execute", watch)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", watch)


def _inserts_into_subjects(seen: list[str]) -> list[str]:
    return [statement for statement in seen if statement.startswith("INSERT INTO subjects")]


def _count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(subjects)).scalar_one())


def test_a_stage_large_next_to_its_table_goes_in_by_a_plain_insert_of_its_new_rows(
    postgresql: Deployment,
) -> None:
    big = COPY_THRESHOLD + 100
    with postgresql.transaction() as connection:
        with _statements(connection) as seen:
            rows = _bases(range(big))
            bulk_insert_ignoring_duplicates(
                connection, subjects, ["base"], [*rows, rows[7]], {"created_at": NOW}
            )
        (statement,) = _inserts_into_subjects(seen)
        assert "ON CONFLICT" not in statement
        assert "NOT (EXISTS (SELECT" in statement
        assert "DISTINCT ON" in statement  # a key twice in the stage goes in once
        assert statement.endswith("ORDER BY tiers_stage_subjects_base.base")
        assert _count(connection) == big

        # The table is now five times the next stage (3 × 600 < 3,000): ON CONFLICT.
        bulk_insert_ignoring_duplicates(
            connection, subjects, ["base"], _bases(range(big, 5 * big)), {"created_at": NOW}
        )
        connection.exec_driver_sql("ANALYZE subjects")
        assert _dialect.planned_rows(connection, subjects) == 5 * big
        with _statements(connection) as seen:
            bulk_insert_ignoring_duplicates(
                connection,
                subjects,
                ["base"],
                _bases(range(5 * big - 9, 6 * big - 9)),
                {"created_at": NOW},
            )
        (statement,) = _inserts_into_subjects(seen)
        assert "ON CONFLICT DO NOTHING" in statement
        assert statement.endswith("ORDER BY tiers_stage_subjects_base.base ON CONFLICT DO NOTHING")
        assert _count(connection) == 6 * big - 9


def test_a_row_committed_meanwhile_sends_the_insert_back_to_ignoring_conflicts(
    postgresql: Deployment,
) -> None:
    """The plain insert does not see a row another transaction commits while it runs: the
    unique violation undoes it to a savepoint, and ``ON CONFLICT DO NOTHING`` inserts the
    rest."""
    rows = _bases(range(COPY_THRESHOLD + 100))
    waiting_pid: list[int] = []
    outcome: list[object] = []
    with postgresql.engine.connect() as other:
        other.execute(insert(subjects), [{"base": rows[42][0], "created_at": NOW}])

        def load() -> None:
            try:
                with postgresql.transaction() as connection:
                    waiting_pid.append(
                        connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                    )
                    with _statements(connection) as seen:
                        bulk_insert_ignoring_duplicates(
                            connection, subjects, ["base"], rows, {"created_at": NOW}
                        )
                    outcome.append(seen)
            except Exception as error:  # noqa: BLE001 - handed to the test's thread
                outcome.append(error)

        loader = threading.Thread(target=load)
        loader.start()
        # The loader's insert waits on the row ``other`` holds uncommitted; then ``other`` commits.
        deadline = time.monotonic() + 10
        wait = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %(pid)s"
        with postgresql.engine.connect() as watcher:
            while time.monotonic() < deadline:
                pids = list(waiting_pid)
                if pids and watcher.exec_driver_sql(wait, {"pid": pids[0]}).scalar() == "Lock":
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the loader never waited on the uncommitted row")
        other.commit()
        loader.join(timeout=30)
    (seen,) = outcome
    assert isinstance(seen, list), seen
    plain, ignoring = _inserts_into_subjects(seen)
    assert "NOT (EXISTS (SELECT" in plain
    assert "ON CONFLICT DO NOTHING" in ignoring
    assert any(statement.startswith("ROLLBACK TO SAVEPOINT") for statement in seen)
    with postgresql.reading() as connection:
        stored = set(connection.execute(select(subjects.c.base)).scalars())
    assert stored == {base for (base,) in rows}


def test_other_integrity_errors_are_raised_as_they_are(postgresql: Deployment) -> None:
    with (
        pytest.raises(IntegrityError, match="not-null"),
        postgresql.transaction() as connection,
        _statements(connection) as seen,
    ):
        try:
            rows = [*_bases(range(COPY_THRESHOLD)), (None,)]
            bulk_insert_ignoring_duplicates(
                connection,
                subjects,
                ["base"],
                rows,  # type: ignore[arg-type]
                {"created_at": NOW},
            )
        finally:
            assert not any("ON CONFLICT" in statement for statement in seen)


def test_a_row_is_new_unless_its_whole_key_is_there(
    postgresql: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same pseudonym values in another domain, or under another key version, are other
    entries: the key's constant columns are part of what is looked for."""
    monkeypatch.setattr(_dialect, "NEW_ROWS_SHARE", 10**9)  # every stage by a plain insert
    add_domain(postgresql, access=ACCESS, name="casino", role="partner")
    add_domain(postgresql, access=ACCESS, name="sncf", role="partner")
    pairs = [(n.to_bytes(32, "big"), n.to_bytes(20, "big")) for n in range(COPY_THRESHOLD)]
    with postgresql.transaction() as connection:
        casino, sncf = (postgresql.domain(connection, name).id for name in ("casino", "sncf"))
        for domain_id, version in [(casino, 1), (sncf, 1), (casino, 2), (casino, 1)]:
            with _statements(connection) as seen:
                register(connection, domain_id=domain_id, version=version, pairs=pairs, now=NOW)
            assert not any("ON CONFLICT" in statement for statement in seen)
        entries = select(func.count()).select_from(pseudonym_index)
        assert connection.execute(entries).scalar_one() == 3 * len(pairs)
        assert _count(connection) == len(pairs)
