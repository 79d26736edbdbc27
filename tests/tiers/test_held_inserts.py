"""Bulk inserts held to the end of a load and made then in key order (storage._held_inserts)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    cast,
    event,
    func,
    select,
    text,
)

from tests.conftest import ACCESS
from tiers.admin import add_domain
from tiers.deployment import Deployment
from tiers.storage import _dialect, _held_inserts, bulk_load, sorted_inserts
from tiers.storage._dialect import COPY_THRESHOLD, bulk_insert_ignoring_duplicates, unique_key
from tiers.storage._held_inserts import SORTING_CACHE_KIB
from tiers.storage.database import BULK_CACHE_KIB
from tiers.storage.links import enrol
from tiers.storage.subjects import register
from tiers.storage.tables import cards, hub_keys, keys, pseudonym_index, subjects

NOW = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)

# A load: batches of subject numbers, each registered with its pseudonym value and, for the
# even ones, enrolled as a card; numbers repeat within and across batches.
loads = st.lists(st.lists(st.integers(0, 40), max_size=12), min_size=1, max_size=5)


def _base(number: int) -> bytes:
    return number.to_bytes(2, "big") * 16


def _value(number: int) -> bytes:
    return (number * 7919 % 65536).to_bytes(2, "big") * 10


def _ref(number: int) -> bytes:
    return (number * 104729 % 65536).to_bytes(2, "big") * 16


def _load(connection: Connection, partner_id: int, batches: list[list[int]]) -> None:
    for index, batch in enumerate(batches):
        now = NOW if index % 2 == 0 else LATER  # constants differ from batch to batch
        register(
            connection,
            domain_id=partner_id,
            version=1,
            pairs=[(_base(n), _value(n)) for n in batch],
            now=now,
        )
        enrol(
            connection,
            partner_id=partner_id,
            cards_=[(_ref(n), _base(n)) for n in batch if n % 2 == 0],
            now=now,
        )


def _contents(connection: Connection) -> dict[str, set[tuple[object, ...]]]:
    """Every stored row, the timestamps as the database stores them (text or timestamp)."""
    return {
        "subjects": set(
            connection.execute(select(subjects.c.base, cast(subjects.c.created_at, String)))
        ),
        "index": set(
            connection.execute(
                select(
                    pseudonym_index.c.domain_id,
                    pseudonym_index.c.version,
                    pseudonym_index.c.value,
                    pseudonym_index.c.subject,
                    cast(pseudonym_index.c.created_at, String),
                )
            )
        ),
        "cards": set(
            connection.execute(
                select(
                    cards.c.ref, cards.c.partner_id, cards.c.base, cast(cards.c.enrolled_at, String)
                )
            )
        ),
    }


def _held_tables(connection: Connection) -> int:
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_temp_master WHERE name LIKE :held"
    else:
        query = "SELECT count(*) FROM pg_tables WHERE tablename LIKE :held"
    return int(connection.execute(text(query), {"held": "tiers_held%"}).scalar_one())


class _RolledBack(Exception):
    pass


def _rolled_back(deployment: Deployment, work: Callable[[Connection], object]) -> object:
    """What ``work`` returns, run in a transaction that is then rolled back."""
    seen: list[object] = []
    with pytest.raises(_RolledBack), deployment.transaction() as connection:
        seen.append(work(connection))
        raise _RolledBack
    return seen[0]


@pytest.fixture
def partner_id(deployment: Deployment) -> int:
    add_domain(deployment, access=ACCESS, name="casino", role="partner")
    with deployment.reading() as connection:
        return deployment.domain(connection, "casino").id


# (rows to a statement when held on SQLite; on PostgreSQL, the share of a stage in its table
# from which it goes in by a plain insert: 0, never; 10**9, always)
@pytest.mark.parametrize(("rows_per_insert", "new_rows_share"), [(3, 0), (100, 10**9)])
@given(loads, loads)
def test_held_inserts_store_exactly_what_direct_inserts_store(
    deployment: Deployment,
    partner_id: int,
    monkeypatch: pytest.MonkeyPatch,
    rows_per_insert: int,
    new_rows_share: int,
    before: list[list[int]],
    load: list[list[int]],
) -> None:
    """Rows already stored, rows repeated in a batch and across batches, rows naming rows
    held in the same block, constants that change between batches: the tables end the same.
    On SQLite the rows are held several to a statement, the rest one by one (3: batches here
    take both ways). On PostgreSQL they go in by ``ON CONFLICT DO NOTHING`` (share 0) or by a
    plain insert of the new ones (any stage is large next to its table)."""
    monkeypatch.setattr(_held_inserts, "ROWS_PER_INSERT", rows_per_insert)
    monkeypatch.setattr(_dialect, "NEW_ROWS_SHARE", new_rows_share)

    def direct(connection: Connection) -> object:
        _load(connection, partner_id, before)
        _load(connection, partner_id, load)
        return _contents(connection)

    def held(connection: Connection) -> object:
        _load(connection, partner_id, before)
        with sorted_inserts(connection):
            _load(connection, partner_id, load)
            assert _held_tables(connection) > 0 or not any(load)
        assert _held_tables(connection) == 0
        return _contents(connection)

    assert _rolled_back(deployment, held) == _rolled_back(deployment, direct)


def test_held_rows_are_invisible_until_the_block_ends_or_is_flushed(
    deployment: Deployment, partner_id: int
) -> None:
    count = select(func.count()).select_from(subjects)
    big = [(_base(n), _value(n)) for n in range(COPY_THRESHOLD + 7)]
    with deployment.transaction() as connection:
        with sorted_inserts(connection) as held:
            register(connection, domain_id=partner_id, version=1, pairs=big[:3], now=NOW)
            assert connection.execute(count).scalar_one() == 0
            held.flush()
            assert connection.execute(count).scalar_one() == 3
            register(connection, domain_id=partner_id, version=1, pairs=big[:300], now=NOW)
            with sorted_inserts(connection):  # an inner block adds to the outer one
                register(connection, domain_id=partner_id, version=1, pairs=big[300:], now=NOW)
            assert connection.execute(count).scalar_one() == 3
        assert connection.execute(count).scalar_one() == len(big)
        index = select(func.count()).select_from(pseudonym_index)
        assert connection.execute(index).scalar_one() == len(big)
        assert _held_tables(connection) == 0


def test_an_exception_in_the_block_inserts_nothing_and_leaves_the_connection_clean(
    deployment: Deployment, partner_id: int
) -> None:
    pairs = [(_base(n), _value(n)) for n in range(COPY_THRESHOLD + 7)]
    with (
        pytest.raises(_RolledBack),
        deployment.transaction() as connection,
        sorted_inserts(connection),
    ):
        register(connection, domain_id=partner_id, version=1, pairs=pairs, now=NOW)
        raise _RolledBack
    # The pool hands the same connection back: no temporary table is left to collide with, and
    # bulk inserts are no longer held.
    with deployment.transaction() as connection:
        assert _held_tables(connection) == 0
        register(connection, domain_id=partner_id, version=1, pairs=pairs[:2], now=NOW)
        assert connection.execute(select(func.count()).select_from(subjects)).scalar_one() == 2
        with sorted_inserts(connection):
            register(connection, domain_id=partner_id, version=1, pairs=pairs, now=NOW)
        assert connection.execute(select(func.count()).select_from(subjects)).scalar_one() == len(
            pairs
        )


def test_a_failed_block_in_a_transaction_that_goes_on_leaves_nothing_in_the_way(
    deployment: Deployment, partner_id: int
) -> None:
    """The block's exception is caught and the transaction goes on: the failed block's rows are
    not inserted, and the next block on the connection holds and inserts its own."""
    count = select(func.count()).select_from(subjects)
    first = [(_base(n), _value(n)) for n in range(5)]
    second = [(_base(n), _value(n)) for n in range(10, 13)]
    with deployment.transaction() as connection:
        with contextlib.suppress(_RolledBack), sorted_inserts(connection):
            register(connection, domain_id=partner_id, version=1, pairs=first, now=NOW)
            raise _RolledBack
        with sorted_inserts(connection):
            register(connection, domain_id=partner_id, version=1, pairs=second, now=NOW)
        stored = set(connection.execute(select(subjects.c.base)).scalars())
        assert stored == {base for base, _ in second}
        assert connection.execute(count).scalar_one() == len(second)


def test_a_stage_insert_of_many_rows_repeats_the_one_row_insert() -> None:
    one = 'INSERT INTO "tiers_held_x" (value, subject) VALUES (?, ?)'
    assert _held_inserts.of_rows(one, 3) == (
        'INSERT INTO "tiers_held_x" (value, subject) VALUES (?, ?), (?, ?), (?, ?)'
    )
    with pytest.raises(ValueError, match="one-row INSERT"):
        _held_inserts.of_rows("INSERT INTO t (a) VALUES (%(a)s)", 3)


def test_rows_are_identified_by_the_key_they_give() -> None:
    """Held rows go in ordered by this key, less the columns every row has the same value in."""
    assert unique_key(subjects, ["base", "created_at"]) == ["base"]
    given = ["value", "subject", "domain_id", "version", "created_at"]
    assert unique_key(pseudonym_index, given) == ["domain_id", "version", "value"]
    # A generated id is not given: the narrowest unique constraint the rows give is the key.
    assert unique_key(cards, ["ref", "base", "partner_id", "enrolled_at"]) == ["ref"]
    # A unique constraint of several columns.
    assert unique_key(keys, ["version", "state", "owner", "purpose"]) == [
        "owner",
        "purpose",
        "version",
    ]
    assert unique_key(keys, ["version", "state", "owner"]) == []
    assert unique_key(hub_keys, ["version", "value", "kind", "ref"]) == ["version", "value"]
    loose = Table("loose", MetaData(), Column("id", Integer, primary_key=True), Column("x", String))
    assert unique_key(loose, ["x"]) == []


def test_rows_without_a_key_are_inserted_too(deployment: Deployment) -> None:
    """A table whose rows give no key is still loaded (in the order held)."""
    loose = Table("tiers_loose", MetaData(), Column("x", String(8)), Column("y", Integer))
    with deployment.transaction() as connection:
        loose.create(connection)
        with sorted_inserts(connection):
            bulk_insert_ignoring_duplicates(connection, loose, ["x"], [("a",), ("b",)], {"y": 5})
        assert set(connection.execute(select(loose.c.x, loose.c.y))) == {("a", 5), ("b", 5)}
        loose.drop(connection)


def test_held_rows_go_in_under_a_smaller_page_cache_given_back_afterwards(
    deployment: Deployment, partner_id: int
) -> None:
    """SQLite's sorter takes as much memory as the page cache: the moves run under a smaller
    one, and the bulk load's own cache is given back."""
    seen: list[int] = []
    with deployment.transaction() as connection:
        if connection.dialect.name != "sqlite":
            pytest.skip("PostgreSQL's memory is the server's")
        driver = connection.connection.driver_connection
        assert driver is not None

        def watch(_conn: Connection, _cursor: object, statement: str, *_: object) -> None:
            if statement.startswith("INSERT INTO subjects"):
                seen.append(driver.execute("PRAGMA cache_size").fetchone()[0])

        event.listen(connection, "before_cursor_execute", watch)
        try:
            with bulk_load(connection):
                with sorted_inserts(connection):
                    pairs = [(_base(1), _value(1))]
                    register(connection, domain_id=partner_id, version=1, pairs=pairs, now=NOW)
                during_load = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
        finally:
            event.remove(connection, "before_cursor_execute", watch)
    assert seen == [-SORTING_CACHE_KIB]
    assert during_load == -BULK_CACHE_KIB
