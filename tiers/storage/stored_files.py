"""Repository of stored files: a file is its chunks, in order, under one name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Connection, delete, func, insert, or_, select

from tiers.storage.tables import stored_files

__all__ = ["add_chunks", "chunk", "chunk_sizes", "names", "remove"]


def add_chunks(connection: Connection, *, name: str, chunks: Iterable[bytes]) -> int:
    """Store ``chunks`` as file ``name`` (replacing any file of that name); returns its size."""
    connection.execute(delete(stored_files).where(stored_files.c.name == name))
    size = 0
    for number, data in enumerate(chunks):
        connection.execute(insert(stored_files).values(name=name, chunk=number, data=data))
        size += len(data)
    if size == 0:  # an empty file is one empty chunk, so that it exists
        connection.execute(insert(stored_files).values(name=name, chunk=0, data=b""))
    return size


def chunk_sizes(connection: Connection, *, name: str) -> list[int]:
    """The sizes of file ``name``'s chunks in order; empty when there is no such file."""
    rows = connection.execute(
        select(func.length(stored_files.c.data))
        .where(stored_files.c.name == name)
        .order_by(stored_files.c.chunk)
    )
    return [int(size) for (size,) in rows]


def chunk(connection: Connection, *, name: str, number: int) -> bytes | None:
    data = connection.execute(
        select(stored_files.c.data).where(
            stored_files.c.name == name, stored_files.c.chunk == number
        )
    ).scalar_one_or_none()
    return None if data is None else bytes(data)


def names(connection: Connection, *, prefix: str) -> list[str]:
    rows = connection.execute(
        select(stored_files.c.name)
        .where(stored_files.c.name.startswith(prefix, autoescape=True))
        .distinct()
        .order_by(stored_files.c.name)
    )
    return [name for (name,) in rows]


def remove(
    connection: Connection, *, names: Sequence[str] = (), prefixes: Sequence[str] = ()
) -> None:
    """Delete the files ``names`` and every file whose name starts with one of ``prefixes``."""
    conditions: list[ColumnElement[bool]] = [stored_files.c.name.in_(list(names))] if names else []
    conditions += [stored_files.c.name.startswith(p, autoescape=True) for p in prefixes]
    if conditions:
        connection.execute(delete(stored_files).where(or_(*conditions)))
