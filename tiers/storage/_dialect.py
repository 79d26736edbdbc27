"""Dialect-specific statements that SQLAlchemy Core spells differently per backend."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

__all__ = ["bulk_insert_ignoring_duplicates", "insert_ignoring_duplicates"]


def insert_ignoring_duplicates(connection: Connection, table: Table) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` for the connection's backend."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def bulk_insert_ignoring_duplicates(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[bytes | int | str]],
    constants: Mapping[str, object] | None = None,
) -> None:
    """:func:`insert_ignoring_duplicates` of many rows, for the hot paths.

    The statement is compiled once and the rows go to the driver's ``executemany`` as they are:
    SQLAlchemy's per-row parameter processing cost more than the insert itself. So ``rows`` may
    hold only values the driver takes unconverted (bytes, int, str); ``constants`` (the same for
    every row, such as a timestamp) are converted once, by their column's own type.
    """
    constants = dict(constants or {})
    names = [*columns, *constants]
    compiled = insert_ignoring_duplicates(connection, table).compile(
        dialect=connection.dialect, column_keys=names
    )
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
