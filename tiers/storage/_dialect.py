"""Dialect-specific statements that SQLAlchemy Core spells differently per backend."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Dialect,
    MetaData,
    Table,
    UniqueConstraint,
    insert,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

if TYPE_CHECKING:
    from tiers.storage._held_inserts import SortedInserts

__all__ = [
    "COPY_THRESHOLD",
    "DRIVER_IN_CHUNK",
    "HELD_INSERTS",
    "Parent",
    "bulk_insert_ignoring_duplicates",
    "copy_rows",
    "in_chunks",
    "insert_from_stage",
    "insert_ignoring_duplicates",
    "rows_where_in",
    "stage_table",
    "unique_key",
    "versioned_chunks",
]

# The key of connection.info under which tiers.storage._held_inserts holds bulk inserts.
HELD_INSERTS = "tiers_held_inserts"


# From this many rows, PostgreSQL bulk inserts go through COPY and a temporary table: below it,
# creating the table costs more than it saves (single-value API calls stay plain inserts).
COPY_THRESHOLD = 500


# The most values one ``IN`` list takes (SQLite binds one parameter per value; its limit is
# 32,766 since 3.32, 999 before).
IN_CHUNK = 1000


# Values one statement of rows_where_in takes on SQLite: well under its limit of 32,766 bound
# parameters.
DRIVER_IN_CHUNK = 5_000


def rows_where_in(
    connection: Connection,
    query: str,
    values: Sequence[Any],
    head: tuple[Any, ...] = (),
    chunk: int = DRIVER_IN_CHUNK,
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query``, a ``SELECT`` whose last condition is ``{in}``, for ``values``;
    ``{p}`` marks each of the parameters before it, given in ``head``.

    Written for the driver rather than as SQLAlchemy's expanding ``IN``, which renders and
    processes the list on every call: ten times the query for one value, twice for 10,000.
    One array parameter on PostgreSQL (``= ANY(…)``); on SQLite, one placeholder a value, in
    statements of at most ``chunk`` values.
    """
    if not values:
        return
    if connection.dialect.name == "postgresql":
        statement = query.format(p="%s", **{"in": "= ANY(%s)"})
        yield from connection.exec_driver_sql(statement, (*head, list(values)))
        return
    for start in range(0, len(values), chunk):
        part = tuple(values[start : start + chunk])
        statement = query.format(p="?", **{"in": f"IN ({','.join('?' * len(part))})"})
        yield from connection.exec_driver_sql(statement, (*head, *part))


def in_chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    """``values`` without repeats, in lists of at most :data:`IN_CHUNK`, for ``IN`` queries."""
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


def versioned_chunks(wanted: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, list[bytes]]]:
    """``(version, value)`` pairs as :func:`in_chunks` of the values of each version, for
    ``version = ? AND value IN (…)`` queries."""
    by_version: dict[int, list[bytes]] = {}
    for version, value in wanted:
        by_version.setdefault(version, []).append(value)
    for version, values in by_version.items():
        for chunk in in_chunks(values):
            yield version, chunk


def insert_ignoring_duplicates(connection: Connection, table: Table) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` for the connection's backend."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


@functools.lru_cache(maxsize=64)
def _compiled(dialect: Dialect, table: Table, names: tuple[str, ...]) -> SQLCompiler:
    statement = (postgresql if dialect.name == "postgresql" else sqlite).insert(table)
    compiled = statement.on_conflict_do_nothing().compile(dialect=dialect, column_keys=list(names))
    assert isinstance(compiled, SQLCompiler)
    return compiled


def _compiled_insert(connection: Connection, table: Table, names: tuple[str, ...]) -> SQLCompiler:
    """The compiled ``INSERT … ON CONFLICT DO NOTHING`` of ``names``, compiled once per
    dialect, table and columns (compiling cost more than a small insert)."""
    return _compiled(connection.dialect, table, names)


@dataclass(frozen=True, slots=True)
class Parent:
    """The row of ``table`` that each inserted row names by its ``column``: ``table``'s
    one-column primary key takes that value, its other columns the ``constants``."""

    column: str
    table: Table
    constants: tuple[tuple[str, object], ...]

    @property
    def key(self) -> str:
        (key,) = self.table.primary_key.columns
        return str(key.name)


def bulk_insert_ignoring_duplicates(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[bytes | int | str]],
    constants: Mapping[str, object] | None = None,
    *,
    parents: Sequence[Parent] = (),
) -> None:
    """:func:`insert_ignoring_duplicates` of many rows, for the hot paths.

    The statement is compiled once and the rows go to the driver's ``executemany`` as they are:
    SQLAlchemy's per-row parameter processing cost more than the insert itself. So ``rows`` may
    hold only values the driver takes unconverted (bytes, int, str); ``constants`` (the same for
    every row, such as a timestamp) are converted once, by their column's own type.

    On PostgreSQL, from :data:`COPY_THRESHOLD` rows, the rows are copied (``COPY … FROM STDIN``,
    binary) into a temporary table of the transaction and inserted from there in one statement:
    several times faster than one ``INSERT`` per row, in the same transaction.

    The ``parents`` the rows name are inserted first, duplicates ignored too.

    Within :func:`tiers.storage.sorted_inserts`, the rows are held and inserted at its end
    (their parents from them, just before them).
    """
    constants = dict(constants or {})
    holder: SortedInserts | None = connection.info.get(HELD_INSERTS)
    if holder is not None:
        holder.add(table, columns, rows, constants, parents)
        return
    rows = rows if isinstance(rows, Sequence) else list(rows)
    for parent in parents:
        at = list(columns).index(parent.column)
        keys = [(row[at],) for row in rows]
        bulk_insert_ignoring_duplicates(
            connection, parent.table, [parent.key], keys, dict(parent.constants)
        )
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        _copy_insert_ignoring_duplicates(connection, table, columns, rows, constants)
        return
    names = [*columns, *constants]
    compiled = _compiled_insert(connection, table, tuple(names))
    fixed: dict[str, Any] = {}
    for name, value in constants.items():
        # The dialect's own implementation: a TypeDecorator's generic impl would hand the
        # driver a datetime, which sqlite3 would store in another format than SQLAlchemy's.
        column_type = table.c[name].type.dialect_impl(connection.dialect)
        processor = column_type.bind_processor(connection.dialect)
        fixed[name] = processor(value) if processor else value
    positions = compiled.positiontup
    if positions:  # qmark (SQLite): tuples in the statement's order
        tail = tuple(fixed[name] for name in constants)
        order = [names.index(name) for name in positions]
        if order == list(range(len(names))):
            parameters: list[Any] = [(*row, *tail) for row in rows]
        else:
            pick = operator.itemgetter(*order)
            parameters = [tuple(pick((*row, *tail))) for row in rows]
    else:  # named (psycopg): dictionaries
        parameters = [dict(zip(columns, row, strict=True), **fixed) for row in rows]
    if parameters:
        connection.exec_driver_sql(str(compiled), parameters)


def stage_table(name: str, table: Table, columns: Sequence[str]) -> Table:
    """A temporary table ``name`` of ``table``'s ``columns`` (PostgreSQL drops it at commit)."""
    return Table(
        name,
        MetaData(),
        *(Column(column, table.c[column].type) for column in columns),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


def copy_rows(
    connection: Connection,
    stage: Table,
    rows: Iterable[Sequence[bytes | int | str]],
) -> None:
    """PostgreSQL: ``COPY`` ``rows`` into ``stage`` (binary, all its columns, in order)."""
    quote = connection.dialect.identifier_preparer.quote
    column_list = ", ".join(quote(column.name) for column in stage.c)
    types = [
        column.type.compile(dialect=connection.dialect).split("(")[0].lower() for column in stage.c
    ]
    driver = connection.connection.driver_connection
    statement = f"COPY {quote(stage.name)} ({column_list}) FROM STDIN (FORMAT BINARY)"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def unique_key(table: Table, given: Iterable[str]) -> list[str]:
    """The columns of ``table``'s key that rows giving the columns ``given`` identify a row by:
    the primary key if they give it, else the narrowest unique constraint they give ([] if
    none)."""
    given = set(given)
    keys = [[column.name for column in table.primary_key]]
    keys += sorted(
        (
            [column.name for column in constraint.columns]
            for constraint in table.constraints
            if isinstance(constraint, UniqueConstraint)
        ),
        key=lambda names: (len(names), names),
    )
    for key in keys:
        if key and set(key) <= given:
            return key
    return []


# PostgreSQL's SQLSTATE for a unique violation.
UNIQUE_VIOLATION = "23505"

# On PostgreSQL, a stage of at least 1/NEW_ROWS_SHARE as many rows as the table it goes into is
# inserted by a plain INSERT of the rows not there yet (its join reads the whole table); a
# smaller one by INSERT … ON CONFLICT DO NOTHING (which makes each row a speculative insertion).
# The crossing point was measured: bench/HISTORY.md, "Measurements behind constants".
NEW_ROWS_SHARE = 3


def planned_rows(connection: Connection, table: Table) -> float:
    """PostgreSQL: the planner's estimate of ``table``'s rows (from its statistics, or from its
    size when it was never analysed), without reading the table."""
    every_row = select(literal_column("1")).select_from(table).compile(dialect=connection.dialect)
    (plan,) = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {every_row}").scalar_one()
    return float(plan["Plan"]["Plan Rows"])


def insert_from_stage(
    connection: Connection,
    table: Table,
    stage: Table,
    constants: Mapping[str, object],
    *,
    staged: int,
    columns: Mapping[str, str] | None = None,
) -> None:
    """``INSERT … SELECT`` every row of ``stage`` (``staged`` rows) into ``table``,
    ``constants`` added, in the order of ``table``'s :func:`unique_key`, ignoring duplicates.
    ``columns`` maps the target's columns to the stage's columns they are taken from: by
    default, every column of the stage into the column of the same name.

    On PostgreSQL, when the stage is large next to the table (:data:`NEW_ROWS_SHARE`), the
    rows whose key is not in the table yet are inserted by a plain ``INSERT``, one of each
    key. A row that a concurrent transaction committed after the statement began makes it fail
    with a unique violation: it is then undone to a savepoint and made with ``ON CONFLICT DO
    NOTHING``, as smaller stages are.
    """
    pairs = (columns or {column.name: column.name for column in stage.c}).items()
    sources: dict[str, Any] = {name: stage.c[column] for name, column in pairs}
    for name, value in constants.items():
        sources[name] = literal(value, table.c[name].type)
    key = unique_key(table, sources)
    order = [sources[name] for name in key if name not in constants]
    # SQLite reads "FROM t ON CONFLICT" as a join constraint without a WHERE between them.
    rows = select(*sources.values()).where(true()).order_by(*order)
    if (
        connection.dialect.name == "postgresql"
        and order
        and staged * NEW_ROWS_SHARE >= planned_rows(connection, table)
    ):
        existing = table.alias("existing")
        there = select(literal(1)).where(*(existing.c[name] == sources[name] for name in key))
        new = rows.ext(postgresql.distinct_on(*order)).where(~there.exists())
        try:
            with connection.begin_nested():
                connection.execute(insert(table).from_select(list(sources), new))
        except IntegrityError as error:
            if getattr(error.orig, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
        else:
            return
    statement = insert_ignoring_duplicates(connection, table).from_select(list(sources), rows)
    connection.execute(statement)


def _copy_insert_ignoring_duplicates(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[bytes | int | str]],
    constants: Mapping[str, object],
) -> None:
    """PostgreSQL: ``COPY`` the rows into a temporary table of this transaction (dropped at its
    end, emptied before each use), then one ``INSERT … SELECT … ON CONFLICT DO NOTHING``."""
    stage = stage_table(f"tiers_stage_{table.name}_{'_'.join(columns)}", table, columns)
    stage.create(connection, checkfirst=True)
    connection.exec_driver_sql(
        f"TRUNCATE {connection.dialect.identifier_preparer.quote(stage.name)}"
    )
    copy_rows(connection, stage, rows)
    insert_from_stage(connection, table, stage, constants, staged=len(rows))
