"""Bulk inserts held until the end of a load and made then in key order.

The keys the hot paths insert (base pseudonyms, pseudonym values, card references) are random
32- and 20-byte values. Inserted as they come, each lands on a random page of an index that, for
a large file, outgrows every cache: SQLite spills and reads back pages one insert at a time and
the load slows as the tables grow. Held in a temporary table and inserted at the end, sorted by
the target's key, the same rows sweep each index once, in order.

Within :func:`sorted_inserts`, the rows given to
:func:`tiers.storage._dialect.bulk_insert_ignoring_duplicates` are written to a temporary table
per target table and set of columns. When the block ends without an exception, or at
:meth:`SortedInserts.flush`, they are inserted into their tables, table by table in the order
each was first used (so that a row's foreign keys go in before it), duplicates ignored as
always, and the temporary tables are dropped. Rows whose constants (a timestamp, a domain) or
parents differ from those of the rows held for the same table are taken as a new load: what is
held goes in first. Rows with the same key must be the same row (true of every table it is used on:
each key there is a keyed hash of the rest), since the sort does not keep their order.

Rows that name a row of another table by its key (an index entry its subject) can bring that
row along as a :class:`~tiers.storage._dialect.Parent`: instead of being held beside them, the
parent rows are inserted from the held rows' column, sorted, just before those rows go in.

What is held cannot be read inside the block: use it only where nothing reads back what the
block inserts. An exception leaves the rows uninserted, to the transaction's rollback, which
takes the temporary tables with it (they are created in the same transaction). A transaction
that swallows the exception and commits keeps none of those rows either: PostgreSQL drops
the temporary tables at commit, and SQLite's are replaced when the connection next holds rows.

The temporary tables hold what the target tables hold (base pseudonyms, pseudonym values,
references), never a clear identifier. SQLite keeps them in a temporary file of the connection,
unlinked as soon as it is opened; PostgreSQL in the session's temporary schema.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Table, insert
from sqlalchemy.schema import DropTable

from tiers.storage._dialect import (
    HELD_INSERTS,
    Parent,
    copy_rows,
    insert_from_stage,
    stage_table,
)
from tiers.storage.database import page_cache

__all__ = ["SortedInserts", "sorted_inserts"]


@dataclass(slots=True)
class _Stage:
    table: Table
    columns: tuple[str, ...]
    constants: tuple[tuple[str, object], ...]
    parents: tuple[Parent, ...]
    temporary: Table
    insert: str  # the driver's INSERT of one row into the temporary table
    insert_many: str  # SQLite: the same, of ``rows_per_insert`` rows ("" on PostgreSQL: COPY)
    rows_per_insert: int
    held: int = 0  # rows held so far


class SortedInserts:
    """The rows held by one :func:`sorted_inserts` block."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._stages: dict[tuple[str, tuple[str, ...]], _Stage] = {}

    def add(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Sequence[bytes | int | str]],
        constants: Mapping[str, object],
        parents: Sequence[Parent] = (),
    ) -> None:
        """Hold ``rows`` (see :func:`~tiers.storage._dialect.bulk_insert_ignoring_duplicates`),
        and the ``parents`` they name."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        key = (table.name, tuple(columns))
        fixed = tuple(constants.items())
        copying = self._connection.dialect.name == "postgresql"  # else SQLite: INSERTs
        stage = self._stages.get(key)
        if stage is not None and (stage.constants, stage.parents) != (fixed, tuple(parents)):
            # Rows that differ in their constants or parents are inserted in the order they
            # came: what is held so far goes in first.
            self.flush()
            stage = None
        if stage is None:
            temporary = stage_table(f"tiers_held_{table.name}_{len(self._stages)}", table, columns)
            # One left by a block that failed in a transaction committed all the same.
            self._connection.execute(DropTable(temporary, if_exists=True))
            temporary.create(self._connection)
            # Compiled once per stage: the rows go to the driver as they are.
            insert_row = str(
                insert(temporary).compile(
                    dialect=self._connection.dialect, column_keys=list(columns)
                )
            )
            per = max(1, min(ROWS_PER_INSERT, _SQLITE_PARAMETERS // len(columns)))
            stage = _Stage(
                table,
                key[1],
                fixed,
                tuple(parents),
                temporary,
                insert_row,
                "" if copying else of_rows(insert_row, per),
                per,
            )
            self._stages[key] = stage
        if copying:
            copy_rows(self._connection, stage.temporary, rows)
        else:
            self._hold_in_sqlite(stage, rows)
        stage.held += len(rows)

    def _hold_in_sqlite(self, stage: _Stage, rows: Sequence[Sequence[bytes | int | str]]) -> None:
        """The rows into the stage, ``rows_per_insert`` to a statement (the rest one by one):
        1.0 instead of 1.6 s a million two-column rows, measured, as SQLite runs a statement
        once for many rows."""
        per = stage.rows_per_insert
        whole = len(rows) - len(rows) % per
        if whole:
            values = list(itertools.chain.from_iterable(rows[:whole]))
            width = per * len(stage.columns)
            self._connection.exec_driver_sql(
                stage.insert_many,
                [tuple(values[start : start + width]) for start in range(0, len(values), width)],
            )
        if whole < len(rows):
            self._connection.exec_driver_sql(stage.insert, rows[whole:])

    def flush(self) -> None:
        """Insert everything held so far, table by table, and drop the temporary tables."""
        stages = list(self._stages.values())
        self._stages.clear()
        if not stages:
            return
        with page_cache(self._connection, SORTING_CACHE_KIB):
            for stage in stages:
                for parent in stage.parents:
                    insert_from_stage(
                        self._connection,
                        parent.table,
                        stage.temporary,
                        dict(parent.constants),
                        staged=stage.held,
                        columns={parent.key: parent.column},
                    )
                insert_from_stage(
                    self._connection,
                    stage.table,
                    stage.temporary,
                    dict(stage.constants),
                    staged=stage.held,
                )
                stage.temporary.drop(self._connection)


# Rows of one INSERT into a stage on SQLite, within the host parameters any SQLite allows (999
# before 3.32): 50 and 200 rows a statement were as fast, 1 a statement took half as long again.
ROWS_PER_INSERT = 100
_SQLITE_PARAMETERS = 999


def of_rows(insert_row: str, rows: int) -> str:
    """``INSERT … VALUES (?, ?)`` made ``INSERT … VALUES (?, ?), (?, ?), …`` of ``rows`` rows."""
    head, values, group = insert_row.rpartition(" VALUES ")
    if not values or not group.startswith("(") or set(group) - set("(?, )"):
        raise ValueError(f"not a one-row INSERT with ? parameters: {insert_row!r}")
    return f"{head} VALUES {', '.join([group] * rows)}"


# SQLite's page cache while held rows go in. Its sorter may take as much memory again, so the
# cache of a bulk load (64 MB) would hold two such buffers at once; sorted inserts need little
# cache, and a million-row file went in as fast with 32 MB, 70 MB lighter at its peak.
SORTING_CACHE_KIB = 32768


@contextmanager
def sorted_inserts(connection: Connection) -> Iterator[SortedInserts]:
    """Hold the bulk inserts made on ``connection`` in the block; make them at its end.

    A block inside another one adds to the outer block's rows.
    """
    outer: SortedInserts | None = connection.info.get(HELD_INSERTS)
    if outer is not None:
        yield outer
        return
    held = connection.info[HELD_INSERTS] = SortedInserts(connection)
    try:
        yield held
    finally:
        del connection.info[HELD_INSERTS]
    held.flush()
