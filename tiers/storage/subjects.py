"""Repository of subjects (base pseudonyms) and of the domain-pseudonym index."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from tiers.storage._dialect import (
    Parent,
    bulk_insert_ignoring_duplicates,
    rows_where_in,
)
from tiers.storage.tables import pseudonym_index, subjects

__all__ = [
    "count_index",
    "delete_version",
    "known",
    "lookup",
    "lookup_many",
    "register",
    "reindex",
]

REINDEX_BATCH = 10_000


def register(
    connection: Connection,
    *,
    domain_id: int,
    version: int,
    pairs: Sequence[tuple[bytes, bytes]],
    now: datetime,
) -> None:
    """Record each ``(base, pseudonym value)``: the subject and its index entry (idempotent).

    The subjects are the entries' parents: within :func:`~tiers.storage.sorted_inserts` only
    the entries are held, and the subjects inserted from them at the end of the block.
    """
    if not pairs:
        return
    bulk_insert_ignoring_duplicates(
        connection,
        pseudonym_index,
        ["value", "subject"],
        [(value, base) for base, value in pairs],
        {"domain_id": domain_id, "version": version, "created_at": now},
        parents=[Parent("subject", subjects, (("created_at", now),))],
    )


def lookup(connection: Connection, *, domain_id: int, version: int, value: bytes) -> bytes | None:
    """The base pseudonym behind a domain pseudonym, or ``None``."""
    return connection.execute(
        select(pseudonym_index.c.subject).where(
            pseudonym_index.c.domain_id == domain_id,
            pseudonym_index.c.version == version,
            pseudonym_index.c.value == value,
        )
    ).scalar_one_or_none()


def lookup_many(
    connection: Connection, *, domain_id: int, wanted: Iterable[tuple[int, bytes]]
) -> dict[tuple[int, bytes], bytes]:
    """:func:`lookup` of many ``(version, value)``: the subject of each one found.

    Written for the driver, as it is on the hot path (an exchange's pseudonyms, and
    :func:`known` for every registering call). On PostgreSQL, one probe of the index per value,
    whatever the table's statistics say: with ``value = ANY(…)`` the planner took a scan of the
    domain's whole index (all of it, or the rows of the domain and version filtered against the
    list) as soon as its estimates were stale or the list long, a cost that grows with the
    alliance.
    """
    by_version: dict[int, dict[bytes, None]] = {}
    for version, value in wanted:
        by_version.setdefault(version, {})[value] = None
    found: dict[tuple[int, bytes], bytes] = {}
    for version, values in by_version.items():
        rows: Iterable[Sequence[Any]]
        if connection.dialect.name == "postgresql":
            rows = connection.exec_driver_sql(_INDEXED_PROBES, (list(values), domain_id, version))
        else:
            rows = rows_where_in(connection, _INDEXED, list(values), head=(domain_id, version))
        found.update(((version, bytes(value)), bytes(subject)) for value, subject in rows)
    return found


def known(
    connection: Connection, *, domain_id: int, version: int, pairs: Sequence[tuple[bytes, bytes]]
) -> set[bytes]:
    """The subjects of those ``(base, pseudonym value)`` the index holds already (the value
    indexed with that same subject), by :func:`lookup_many`."""
    found = lookup_many(
        connection, domain_id=domain_id, wanted=[(version, value) for _, value in pairs]
    )
    return {base for base, value in pairs if found.get((version, value)) == base}


_INDEXED = (
    "SELECT value, subject FROM pseudonym_index WHERE domain_id = {p} AND version = {p} "
    "AND value {in}"
)
# LIMIT 1 keeps the lateral subquery from being flattened into a join the planner may hash.
_INDEXED_PROBES = (
    "SELECT w.value, s.subject FROM unnest(%s::bytea[]) AS w(value) CROSS JOIN LATERAL "
    "(SELECT subject FROM pseudonym_index i WHERE i.domain_id = %s AND i.version = %s "
    "AND i.value = w.value LIMIT 1) AS s"
)


def count_index(connection: Connection, *, domain_id: int, version: int | None = None) -> int:
    query = (
        select(func.count())
        .select_from(pseudonym_index)
        .where(pseudonym_index.c.domain_id == domain_id)
    )
    if version is not None:
        query = query.where(pseudonym_index.c.version == version)
    return int(connection.execute(query).scalar_one())


def _subjects_of(
    connection: Connection, *, domain_id: int, version: int
) -> Iterable[list[tuple[bytes, bytes]]]:
    """``(pseudonym value, subject)`` of the entries indexed under ``version``, in batches, in
    the primary key's order (by pseudonym value: a restartable scan of one range of the key)."""
    last: bytes | None = None
    while True:
        query = (
            select(pseudonym_index.c.value, pseudonym_index.c.subject)
            .where(pseudonym_index.c.domain_id == domain_id, pseudonym_index.c.version == version)
            .order_by(pseudonym_index.c.value)
            .limit(REINDEX_BATCH)
        )
        if last is not None:
            query = query.where(pseudonym_index.c.value > last)
        rows = connection.execute(query).all()
        if not rows:
            return
        yield [(bytes(row.value), bytes(row.subject)) for row in rows]
        last = bytes(rows[-1].value)


def reindex(
    connection: Connection,
    *,
    domain_id: int,
    from_version: int,
    to_version: int,
    derive: Callable[[bytes], bytes],
    now: datetime,
    translated: Callable[[list[bytes], list[bytes]], None] | None = None,
) -> int:
    """Index every subject of ``from_version`` under ``to_version`` too; returns the count.

    ``derive`` maps a base pseudonym to its new pseudonym value: no clear identifier is needed.
    ``translated`` is given each batch's old values and, in the same order, their new ones.
    """
    total = 0
    for batch in _subjects_of(connection, domain_id=domain_id, version=from_version):
        new_values = [derive(base) for _, base in batch]
        bulk_insert_ignoring_duplicates(
            connection,
            pseudonym_index,
            ["value", "subject"],
            [(new, base) for new, (_, base) in zip(new_values, batch, strict=True)],
            {"domain_id": domain_id, "version": to_version, "created_at": now},
        )
        if translated is not None:
            translated([old for old, _ in batch], new_values)
        total += len(batch)
    return total


def delete_version(connection: Connection, *, domain_id: int, version: int) -> int:
    """Drop every index entry of a destroyed key version; returns how many."""
    result = connection.execute(
        delete(pseudonym_index).where(
            pseudonym_index.c.domain_id == domain_id, pseudonym_index.c.version == version
        )
    )
    return int(result.rowcount or 0)
